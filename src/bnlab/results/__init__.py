"""bnlab.results: the SQLite results store, provenance and export (never imports torch).

The store is the only link between running and reporting: sweeps write runs, metrics and
arrays into ``<out>/bnlab.db``; claims, figures and ``bnlab export`` read them back.

Example:
    >>> from bnlab.results import Store
    >>> with Store("bnlab_out") as store:      # doctest: +SKIP
    ...     df = store.metrics(names="test_acc")
"""

from bnlab.results.export import FORMATS, export
from bnlab.results.provenance import git_info, package_versions, provenance
from bnlab.results.status import status_text
from bnlab.results.store import (
    DB_NAME,
    SCHEMA_VERSION,
    STATUSES,
    SchemaError,
    Store,
    StoreError,
    StoreLostError,
    StorePathError,
)

__all__ = [
    "DB_NAME",
    "FORMATS",
    "SCHEMA_VERSION",
    "STATUSES",
    "SchemaError",
    "Store",
    "StoreError",
    "StoreLostError",
    "StorePathError",
    "export",
    "git_info",
    "package_versions",
    "provenance",
    "status_text",
]
