"""The ``greet`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from greeter import __version__, greet_all


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(prog="greet", description="Greet people by name.")
    result.add_argument("names", nargs="+", metavar="NAME", help="who to greet")
    result.add_argument("--greeting", default="Hello", help="the word to greet with (default: %(default)s)")
    result.add_argument("--table", action="store_true", help="print a table (needs greeter[table])")
    result.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        lines = greet_all(args.names, args.greeting)
    except ValueError as exc:
        print(f"greet: {exc}", file=sys.stderr)
        return 2
    if not args.table:
        print("\n".join(lines))
        return 0
    try:
        from tabulate import tabulate
    except ImportError:
        print("greet: --table needs the 'table' extra: pip install 'greeter[table]'", file=sys.stderr)
        return 2
    print(tabulate(list(zip(args.names, lines)), headers=["name", "greeting"]))
    return 0
