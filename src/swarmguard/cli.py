"""The ``swarmguard`` command."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from swarmguard import __version__

if TYPE_CHECKING:
    from pathlib import Path

    from swarmguard.api.grpc_server import ApiServer
    from swarmguard.node.runtime import Node


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
    sim = commands.add_parser("sim", help="the deterministic consensus simulator")
    sim_commands = sim.add_subparsers(dest="sim", required=True)
    run = sim_commands.add_parser("run", help="run one seed; print its summary (and trace)")
    run.add_argument("--seed", type=int, required=True)
    soak = sim_commands.add_parser("soak", help="run many seeds on every core")
    soak.add_argument("--seeds", type=int, default=2000, help="how many seeds (default 2000)")
    soak.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    soak.add_argument("--workers", type=int, default=None, help="processes (default: cores)")
    for command in (run, soak):
        command.add_argument(
            "--validators", type=int, default=None, help="validator count (default: 4/7/10 by seed)"
        )
        command.add_argument(
            "--mutant", default=None, help="simulate a deliberately broken replica (sim.mutants)"
        )
    run.add_argument("--trace", action="store_true", help="print every event")
    _node_commands(commands)
    return parser


def _int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high], or a usage error saying so."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {low}..{high}, got {value}")
        return value

    return parse


VALIDATORS_MAX = 100
"""As ``write_testnet`` allows: a local network of more is not one this machine can run."""
BASE_PORT_MAX = 65535 - 3000 - VALIDATORS_MAX
"""``up`` puts the metrics, API and HTTP ports 1000, 2000 and 3000 above the base port
(``testnet`` at 9090, 50051 and 8080 on), so one range for both."""


def _node_commands(commands: Any) -> None:
    """The validator network's commands: testnet, node, up, clients, bench."""
    testnet = commands.add_parser(
        "testnet", help="write keys, configs and one genesis for a local validator network"
    )
    counts, ports = _int_in(1, VALIDATORS_MAX), _int_in(1024, BASE_PORT_MAX)
    testnet.add_argument("--validators", type=counts, default=4)
    testnet.add_argument("--output", required=True, help="directory for the node homes")
    testnet.add_argument("--chain-id", default="swarmguard-testnet")
    testnet.add_argument("--base-port", type=ports, default=26656)
    node = commands.add_parser("node", help="run one validator from its home directory")
    node.add_argument("--home", required=True)
    up = commands.add_parser(
        "up", help="run a local validator network in one command, with a live view"
    )
    up.add_argument("--validators", type=counts, default=4)
    up.add_argument("--home", default=None, help="keep the network here (default: a temp dir)")
    up.add_argument("--base-port", type=ports, default=26656)
    up.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    up.add_argument(
        "--load", type=float, default=0.0, help="signed transfers/s from a client process (0: none)"
    )
    status = commands.add_parser("status", help="a node's status (gRPC)")
    query = commands.add_parser("query", help="query application state (gRPC)")
    query.add_argument("what", choices=["account", "validators"])
    query.add_argument("address", nargs="?", help="account: its 20-byte address, hex")
    clients = [status, query, *_tx_commands(commands)]
    bench = commands.add_parser(
        "bench", help="a local network under load from a separate client: TPS and latency"
    )
    bench.add_argument("--validators", default="4,7", help="comma-separated counts")
    bench.add_argument("--rtt", type=float, default=0.05, help="injected round trip, seconds")
    bench.add_argument("--seconds", type=float, default=15.0, help="load per case")
    bench.add_argument("--quick", action="store_true", help="4 validators, 5 s per case")
    bench.add_argument(
        "--rate",
        type=float,
        default=2200.0,
        help="offered tx/s of the latency cases (at most 60%% of the measured capacity)",
    )
    bench.add_argument(
        "--slack-ppm",
        type=int,
        default=0,
        help="the chain's fast-path slack in millionths of the power (142858: one of seven)",
    )
    for client in clients:
        client.add_argument("--node", default="127.0.0.1:50051", help="gRPC address")
        client.add_argument(
            "--tls-ca", help="PEM: the CA of the node's API certificate (connect over TLS)"
        )
        client.add_argument("--tls-cert", help="PEM: this client's certificate (mutual TLS)")
        client.add_argument("--tls-key", help="PEM: that certificate's key")


def _tx_commands(commands: Any) -> list[argparse.ArgumentParser]:
    """``swarmguard tx <kind>``: the built-in ledger's transactions, signed with ``--key`` (the
    sender's account key file) at the account's next nonce, which the node is asked for."""
    tx = commands.add_parser("tx", help="sign and submit a transaction (gRPC)")
    kinds = tx.add_subparsers(dest="kind", required=True)
    made = {
        "transfer": kinds.add_parser("transfer", help="move tokens to another account"),
        "delegate": kinds.add_parser("delegate", help="bond tokens to a validator"),
        "unbond": kinds.add_parser("unbond", help="start unbonding from a validator"),
        "redelegate": kinds.add_parser("redelegate", help="move a bond to another validator"),
        "unjail": kinds.add_parser("unjail", help="the sender's validator asks to sign again"),
        "create-validator": kinds.add_parser(
            "create-validator", help="register the sender as a validator with a self-bond"
        ),
    }
    amount = {"type": int, "required": True}
    made["transfer"].add_argument("--to", required=True, help="recipient address, hex")
    made["transfer"].add_argument("--amount", **amount)
    made["delegate"].add_argument("--validator", required=True, help="operator address, hex")
    made["delegate"].add_argument("--amount", **amount)
    made["unbond"].add_argument("--validator", required=True, help="operator address, hex")
    made["unbond"].add_argument("--amount", type=int, default=0, help="tokens (0: the whole bond)")
    made["redelegate"].add_argument("--source", required=True, help="operator address, hex")
    made["redelegate"].add_argument("--destination", required=True, help="operator address, hex")
    made["redelegate"].add_argument("--amount", **amount)
    create = made["create-validator"]
    create.add_argument("--consensus-key", required=True, help="its ed25519 key file")
    create.add_argument("--vrf-key", required=True, help="its ecvrf key file")
    create.add_argument("--self-bond", **amount)
    create.add_argument("--commission-ppm", type=_int_in(0, 1_000_000), default=0)
    for parser in made.values():
        parser.add_argument("--key", required=True, help="the sender's ed25519 key file")
        parser.add_argument("--wait", action="store_true", help="wait until a block commits it")
    return list(made.values())


def _client(args: argparse.Namespace) -> int:
    from swarmguard.api.client import run_client  # noqa: PLC0415

    return run_client(args)


def _up(args: argparse.Namespace) -> int:
    import tempfile  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from swarmguard.node.local import run_local_network  # noqa: PLC0415

    if args.home is None:
        with tempfile.TemporaryDirectory(prefix="swarmguard-up-") as directory:
            return run_local_network(
                Path(directory), args.validators, args.base_port, args.duration, args.load
            )
    return run_local_network(
        Path(args.home), args.validators, args.base_port, args.duration, args.load
    )


def _testnet(args: argparse.Namespace) -> int:
    import time  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from swarmguard.node.config import write_testnet  # noqa: PLC0415

    try:
        homes = write_testnet(
            Path(args.output),
            args.validators,
            chain_id=args.chain_id,
            base_port=args.base_port,
            metrics_ports=[9090 + i for i in range(args.validators)],
            api_ports=[50051 + i for i in range(args.validators)],
            http_ports=[8080 + i for i in range(args.validators)],
            genesis_time=int(time.time()),
        )
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for home in homes:
        print(home)
    return 0


def _progress(node: Node) -> dict[str, object]:
    """The node's once-a-second log line: height, counters, median commit latency since the
    last line."""
    import dataclasses  # noqa: PLC0415

    latencies = sorted(node.latencies)
    node.latencies.clear()
    return {
        "height": node.height,
        **dataclasses.asdict(node.stats),
        "transactions": node.chain.committed_transactions,
        "commit_ms": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None,
    }


def _node(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415
    import logging  # noqa: PLC0415
    import signal  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from swarmguard.node.config import ConfigError, load_home  # noqa: PLC0415
    from swarmguard.node.logs import configure_logging  # noqa: PLC0415
    from swarmguard.node.runtime import ListenError, Node  # noqa: PLC0415
    from swarmguard.storage.errors import StoreError  # noqa: PLC0415

    configure_logging()
    try:
        config = load_home(Path(args.home))
    except ConfigError as error:
        print(f"error: invalid configuration: {error}", file=sys.stderr)
        return 2
    log = logging.getLogger("swarmguard.node")

    async def run() -> None:
        try:
            node = Node(config)
        except (StoreError, ValueError) as error:  # refused data: say why, no traceback
            print(f"error: cannot start on {config.home}: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        stop, reload = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload.set)
        try:
            api = await _start_node(node)
        except ListenError as error:  # a port in use: the field is named, what started is gone
            print(f"error: cannot start on {config.home}: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        _tune_gc()
        log.info("started", extra={"height": node.height, "port": node.transport.port})
        reported = node.height
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if node.height != reported:
                reported = node.height
                log.info("height", extra=_progress(node))
            if reload.is_set():
                reload.clear()
                await _reload(node, api, Path(args.home))
        if api is not None:
            with contextlib.suppress(TimeoutError):  # never let a stuck stop keep the process
                await asyncio.wait_for(api.stop(), STOP_SECONDS)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(node.stop(), STOP_SECONDS)
        log.info("stopped", extra={"height": node.height})

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(run())
    return 0


async def _reload(node: Node, api: ApiServer | None, home: Path) -> None:
    """SIGHUP: read the home again and apply its ``[[peers]]`` and, if the API serves TLS, its
    certificate files as they are now (nothing else is reloaded); a configuration that does not
    load changes nothing and is logged with the field."""
    import logging  # noqa: PLC0415

    from swarmguard.node.config import ConfigError, load_home  # noqa: PLC0415

    log = logging.getLogger("swarmguard.node")
    try:
        config = load_home(home)
        removed, added = await node.update_peers(config.peers, config.peer_keys)
    except (ConfigError, ValueError) as error:
        log.error("reload refused, peers unchanged: %s", error)
        return
    log.info("peers reloaded", extra={"added": added, "removed": removed})
    if api is None or (config.api_tls is None and node.config.api_tls is None):
        return
    try:
        if config.api_tls is None:
            raise ValueError("the API serves TLS: turning it off needs a restart")
        api.reload_tls(config.api_tls)
    except ValueError as error:
        log.error("reload refused, API certificates unchanged: %s", error)
        return
    log.info("API certificates reloaded")


async def _start_node(node: Node) -> ApiServer | None:
    """Start the node, then its API servers if configured; if an address cannot be bound,
    stop whatever had started and re-raise the ``ListenError``."""
    from swarmguard.node.runtime import ListenError  # noqa: PLC0415

    config, api = node.config, None
    try:
        await node.start()
        if config.api is not None:
            from swarmguard.api.grpc_server import ApiServer  # noqa: PLC0415 - only if asked

            api = ApiServer(node)
            with _exit_unless_done_within(API_START_SECONDS, "starting the gRPC/HTTP API"):
                await api.start(*config.api, tls=config.api_tls)
                if config.http is not None:
                    api.start_http(*config.http, tls=config.api_tls)
    except ListenError:
        if api is not None:
            await api.stop()
        await node.stop()
        raise
    return api


API_START_SECONDS = 30.0
"""Starting the API servers takes milliseconds; past this the process exits with an error
(``_exit_unless_done_within``) rather than run on as a validator nobody can reach."""
STOP_SECONDS = 10.0
"""How long each part of a node's shutdown may take before the process exits anyway (the store
and the guard record are crash-safe, so exiting mid-shutdown loses nothing committed)."""


@contextlib.contextmanager
def _exit_unless_done_within(seconds: float, what: str) -> Iterator[None]:
    """Exit the process (code 3, a line on stderr) if the block has not finished in
    ``seconds``: a watchdog thread, since a stalled start may hold the event loop, and a raw
    write, since it may hold logging's lock. Once, in CI, a node stalled starting its gRPC
    server (never reproduced: 43 starts under load since); a supervisor restarts a node that
    exits, not one that hangs."""
    done = threading.Event()

    def watch() -> None:
        if not done.wait(seconds):
            os.write(2, f"error: {what} did not finish in {seconds:g} s; exiting\n".encode())
            os._exit(3)

    threading.Thread(target=watch, name="swarmguard-start-watchdog", daemon=True).start()
    try:
        yield
    finally:
        done.set()


def _tune_gc() -> None:
    """A node allocates many short-lived objects per transaction and keeps large caches: the
    default thresholds run a young collection every 700 allocations and, now and then, a full
    one over every cache (tens of ms, the tail of commit latency). Start-up objects (modules,
    genesis, keys) are never garbage, so they leave the collector's view (``freeze``), and the
    young generation is collected every 20,000 allocations instead."""
    import gc  # noqa: PLC0415

    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _loop_factory() -> Callable[[], Any] | None:
    """uvloop where installed (the issue's choice), or asyncio's own loop with
    SWARMGUARD_LOOP=asyncio. Measured on the node at capacity, alternating three times: 3-12%
    more transactions per second under uvloop (its TLS and callbacks are compiled; asyncio's
    are Python). A node under uvloop once stalled starting its gRPC server in CI; 43 starts
    since (20 with both cores busy) did not, and the API start is now watched."""
    if os.environ.get("SWARMGUARD_LOOP", "uvloop") == "asyncio":
        return None
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return None
    return uvloop.new_event_loop


def _sim(args: argparse.Namespace) -> int:
    from swarmguard.sim.mutants import MUTANTS, replica_class  # noqa: PLC0415
    from swarmguard.sim.scenario import Scenario  # noqa: PLC0415
    from swarmguard.sim.simulation import Simulation  # noqa: PLC0415
    from swarmguard.sim.soak import replay_command, soak  # noqa: PLC0415

    if args.mutant is not None and args.mutant not in MUTANTS:
        print(f"error: unknown mutant {args.mutant!r}; one of {sorted(MUTANTS)}", file=sys.stderr)
        return 2
    if args.validators is not None and args.validators < 1:
        print("error: --validators must be at least 1", file=sys.stderr)
        return 2
    if args.sim == "run":
        scenario = Scenario.draw(args.seed, args.validators, mutant=args.mutant)
        simulation = Simulation(
            scenario, trace=args.trace, replica_class=replica_class(args.mutant)
        )
        result = simulation.run()
        for line in result.trace:
            print(line)
        print(result.summary())
        return 0 if result.ok else 1
    seeds = range(args.start, args.start + args.seeds)
    failed = 0
    fast = slow = 0
    for outcome in soak(seeds, args.validators, args.mutant, args.workers):
        fast += outcome.fast_commits
        slow += outcome.slow_commits
        if not outcome.ok:
            failed += 1
            print(outcome.summary)
            print(f"  replay: {replay_command(outcome.seed, args.validators, args.mutant)}")
    print(
        f"{len(seeds) - failed} of {len(seeds)} seeds passed "
        f"(seeds {seeds.start}-{seeds.stop - 1}); honest decisions {fast} fast, {slow} slow"
    )
    return 1 if failed else 0


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
    if args.command == "sim":
        return _sim(args)
    if args.command == "testnet":
        return _testnet(args)
    if args.command == "node":
        return _node(args)
    if args.command == "up":
        return _up(args)
    if args.command in ("status", "query", "tx"):
        return _client(args)
    if args.command == "bench":
        from swarmguard.api.bench import run_bench  # noqa: PLC0415

        counts = [4] if args.quick else [int(n) for n in args.validators.split(",")]
        seconds = 5.0 if args.quick else args.seconds
        print(run_bench(counts, args.rtt, seconds, args.rate, args.slack_ppm))
        return 0
    if args.command == "demo" and args.demo == "resilience":
        from swarmguard.demos import resilience_demo  # noqa: PLC0415 - load only what runs

        results = resilience_demo.main(seed=args.seed)
        if args.json:
            json.dump(results, sys.stdout, indent=2)
            sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
