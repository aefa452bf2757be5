"""Named moments of a run that a test may observe: the seam the crash-safety tests hold the worker at.

Production code only says `reached("page-read")`; nothing observes a moment unless a test registered
an observer (tests/fault_entry.py does, for the kill tests), so a moment costs one dict lookup.
Observers run on the thread that reached the moment and may block it or raise.

Moments: `run-start` (`dicomcast run` starting), `page-read` (a batch read, nothing written),
`study-written` (one study's FHIR write done, others in flight, the checkpoint not saved),
`before-checkpoint` (every write of the batch done, its checkpoint not saved) and `after-checkpoint`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

Moment = Literal["run-start", "page-read", "study-written", "before-checkpoint", "after-checkpoint"]
MOMENTS: tuple[Moment, ...] = get_args(Moment)
Observer = Callable[[Moment], None]

# Replaced as a whole on registration (never mutated), so threads reading it need no lock.
_observers: dict[Moment, tuple[Observer, ...]] = {}


def reached(moment: Moment) -> None:
    """Called where `moment` happens; calls its observers, if any, in the order they registered."""
    for observer in _observers.get(moment, ()):
        observer(moment)


def observe(moment: Moment, observer: Observer) -> Callable[[], None]:
    """Registers `observer` for `moment`; returns the function that unregisters it."""
    if moment not in MOMENTS:
        raise ValueError(f"unknown moment {moment!r}; one of {', '.join(MOMENTS)}")
    _observers[moment] = (*_observers.get(moment, ()), observer)

    def forget() -> None:
        _observers[moment] = tuple(o for o in _observers.get(moment, ()) if o is not observer)

    return forget
