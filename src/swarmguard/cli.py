"""The ``swarmguard`` command."""

from __future__ import annotations

import argparse
import json
import os
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
    keys = commands.add_parser("keys", help="validator key files")
    key_commands = keys.add_subparsers(dest="keys", required=True)
    generate = key_commands.add_parser(
        "generate", help="create a new key file (mode 0600; never overwrites)"
    )
    generate.add_argument("path", help="where to write the key file")
    generate.add_argument(
        "--kind",
        choices=["ed25519", "ecvrf"],
        default="ed25519",
        help="ed25519: consensus key; ecvrf: VRF key for leader selection",
    )
    show = key_commands.add_parser("show", help="print a key file's kind and public key")
    show.add_argument("path")
    return parser


def _keys(args: argparse.Namespace) -> int:
    from swarmguard.crypto import KeyFileError, load_key_file, write_key_file  # noqa: PLC0415
    from swarmguard.crypto.keys import public_key_of  # noqa: PLC0415

    try:
        if args.keys == "generate":
            seed = os.urandom(32)
            write_key_file(args.path, args.kind, seed)
            kind = args.kind
        else:
            kind, seed = load_key_file(args.path)
    except FileExistsError:
        print(f"error: {args.path} exists; key files are never overwritten", file=sys.stderr)
        return 1
    except KeyFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"kind": kind, "public_key": public_key_of(kind, seed).hex()}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    if args.command == "keys":
        return _keys(args)
    if args.command == "demo" and args.demo == "resilience":
        from swarmguard.demos import resilience_demo  # noqa: PLC0415 - load only what runs

        results = resilience_demo.main(seed=args.seed)
        if args.json:
            json.dump(results, sys.stdout, indent=2)
            sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
