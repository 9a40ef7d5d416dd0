"""Child-process entry of the benchmark harness: load one ``bench_<name>.py`` by path, call its
``run(quick)``, and write its figures as JSON records to ``--out``.

``python -m qnode_fw.benchmarks.child --module bench/bench_tags.py --out figures.json [--quick]
[--profile tags.txt]``. With ``--profile`` the call runs under pyinstrument and its text report
is written there (the figures of a profiled run are slower than normal and only say where time
goes).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from .figure import as_figure


def load_module(path: Path):
    # bench/ on sys.path: a benchmark may import a helper module next to it.
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load benchmark module {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise AttributeError(f"{path}: no run(quick) function")
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", type=Path)
    args = parser.parse_args(argv)
    module = load_module(args.module.resolve())
    if args.profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
        try:
            items = module.run(quick=args.quick)
        finally:
            profiler.stop()
        args.profile.parent.mkdir(parents=True, exist_ok=True)
        args.profile.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    else:
        items = module.run(quick=args.quick)
    figures = [as_figure(item, origin=str(args.module)) for item in items]
    args.out.write_text(json.dumps([f.to_json() for f in figures]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
