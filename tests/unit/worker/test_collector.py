"""`tune_collector`: start-up objects frozen out of the collector's sight, young collections spaced."""

from __future__ import annotations

import gc

from dicomcast.worker.build import YOUNG_COLLECTION_EVERY, tune_collector


def test_the_collector_is_tuned_once_start_up_has_built_everything() -> None:
    before = gc.get_threshold()
    try:
        tune_collector()
        assert gc.get_threshold() == (YOUNG_COLLECTION_EVERY, *before[1:])
        assert gc.get_freeze_count() > 0
        garbage = [[]]  # a cycle: still collected
        garbage[0].append(garbage)
        del garbage
        assert gc.collect() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
