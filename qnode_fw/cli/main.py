"""Entry point of the ``qnode`` command.

Subcommands are discovered: every module ``qnode_fw/cli/cmd_*.py`` exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a handler returning the exit
code. Exit codes: 0 ok, 1 failure, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from qnode_fw import __version__
from qnode_fw.errors import ConfigError, QnodeError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qnode",
        description="qnode-fw: run quantum-network testbed nodes, experiments and benches.",
    )
    parser.add_argument("--version", action="version", version=f"qnode-fw {__version__}")
    parser.add_argument("--log-level", default="WARNING",
                        help="logging level (DEBUG, INFO, WARNING, ERROR); default WARNING")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    package = importlib.import_module("qnode_fw.cli")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"qnode_fw.cli.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    from qnode_fw.logs import configure_logging

    configure_logging(args.log_level)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    except QnodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
