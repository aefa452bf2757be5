"""A repair run's lease and resume point, kept by the store.

- Lease `reconcile-run:<source>` (the leases table): one repairing reconcile per source at a time.
  It is not the worker's lease: reconcile works beside a running worker, both writing through
  If-Match, so neither overwrites the other (README "Reconciliation").
- Resume point (the store's repair runs): the last study (in the run's sorted order) whose repair
  finished, with a fingerprint of the run's filters. A run with the same filters continues after it;
  a different run starts over. A finished run removes it. The change-feed checkpoint is never touched.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from dicomcast.dicom.inventory import StudyFilter, StudyRef
from dicomcast.errors import LeaseLostError
from dicomcast.store import ResumePoint, Store
from dicomcast.worker.lease import dead_predecessor, make_owner

LEASE = timedelta(minutes=5)


def lease_name(source: str) -> str:
    return f"reconcile-run:{source}"


def fingerprint(filters: StudyFilter, full: bool) -> str:
    text = f"{filters.study_uid}|{filters.date_from}|{filters.date_to}|{full}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class RunState:
    def __init__(self, store: Store, source: str, run_fingerprint: str) -> None:
        self.store = store
        self.source = source
        self.fingerprint = run_fingerprint
        self.owner = make_owner()

    def take_lease(self) -> None:
        lease = self.store.lease(lease_name(self.source))
        take_from = lease.owner if lease and dead_predecessor(lease.owner, self.owner) else None
        if not self.store.acquire_lease(lease_name(self.source), self.owner, LEASE, take_from=take_from):
            holder = lease.owner if lease else "another process"
            raise LeaseLostError(
                f"{self.source}: another reconcile is repairing this source (lease held by {holder}); "
                "wait for it to finish, or for its lease to expire"
            )

    def release(self) -> None:
        self.store.release_lease(lease_name(self.source), self.owner)

    def resume_after(self) -> StudyRef | None:
        """The last study done by an interrupted run with the same filters; None: start over."""
        point = self.store.resume_point(self.source)
        if point is None or point.fingerprint != self.fingerprint:
            return None
        return StudyRef(point.partition_key, point.study_uid)

    def save(self, done: StudyRef) -> None:
        """The run is complete up to `done` (in sorted order); also renews the lease."""
        self.take_lease()
        self.store.save_resume_point(self.source, ResumePoint(self.fingerprint, done.partition_key, done.study_uid))

    def finish(self) -> None:
        self.store.forget_resume_point(self.source)
