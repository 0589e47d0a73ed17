"""The `sipreg` command: operator tools around a local or deployed sipreg.

Each subcommand is a module here with `register(subparsers)`, which adds its parser and sets
`run(args) -> int` as the parser's default `func`. It needs only the runtime package `sipreg`
(its signed clients: sipreg.client) and the project's `dependencies`; `sipreg devstack up` alone
imports devstack, when it runs (the `devstack` extra), so `pip install .` gives every other command.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Subcommand modules, in the order `sipreg --help` lists them.
_SUBCOMMANDS: tuple[str, ...] = (
    "devstack",
    "send",
    "importer",
    "status",
    "revoke",
    "controls",
    "redrive",
    "cost",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sipreg", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _SUBCOMMANDS:
        importlib.import_module(f"sipreg_cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
