"""`dicomcast reconcile` asks the source for its DICOMweb reads (ChangeSource.dicomweb) instead of
testing which class it is: a source without them is a configuration error naming the source."""

from __future__ import annotations

import pytest

from dicomcast.errors import ConfigError
from dicomcast.reconcile.run import RunOptions, reconcile_source
from tests.unit.worker.fakes import FakeFhir, FakeSource, make_context, memory_store


def test_a_source_without_dicomweb_reads_cannot_be_reconciled() -> None:
    source = FakeSource([])
    ctx = make_context(source, FakeFhir(), memory_store())
    with pytest.raises(ConfigError, match=f"{source.name}: this kind of source cannot be reconciled"):
        reconcile_source(ctx, RunOptions(dry_run=True))
