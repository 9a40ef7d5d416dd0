"""Run records: ``runs/<time>-<name>/`` with the resolved configuration, a JSON-lines event log,
result and tag arrays (npy chunks, PTU T2 export) and ``summary.json``, written incrementally and
readable after a crash (:mod:`.writer`, :mod:`.reader`, :mod:`.atomic`)."""

from .reader import RunData, export_missing_ptu, load_run, read_chunks
from .writer import TAG_DTYPE, RunRecord, run_dir_name, safe_name

__all__ = ["TAG_DTYPE", "RunData", "RunRecord", "export_missing_ptu", "load_run", "read_chunks",
           "run_dir_name", "safe_name"]
