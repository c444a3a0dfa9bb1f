"""The ``swarmguard`` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from swarmguard import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="swarmguard",
        description="SwarmGuard: a BFT validator core and a resilience library for Python.",
    )
    parser.add_argument("--version", action="version", version=f"swarmguard {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a demonstration")
    demos = demo.add_subparsers(dest="demo", required=True)
    resilience = demos.add_parser(
        "resilience", help="the five resilience scenarios (breaker, limiter, bulkhead, retry, all)"
    )
    resilience.add_argument("--seed", type=int, default=7, help="seed of the simulated services")
    resilience.add_argument(
        "--json", action="store_true", help="print the results as JSON after the account"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "demo" and args.demo == "resilience":
        from swarmguard.demos import resilience_demo  # noqa: PLC0415 - load only what runs

        results = resilience_demo.main(seed=args.seed)
        if args.json:
            json.dump(results, sys.stdout, indent=2)
            sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
