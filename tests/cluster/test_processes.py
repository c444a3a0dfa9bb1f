"""Real validator processes on loopback (``swarmguard testnet`` + ``swarmguard node``): they
agree on a chain, one is killed with SIGKILL and restarted, and the chains stay identical."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from swarmguard.api.v1 import node_pb2, node_pb2_grpc
from swarmguard.crypto import SigningKey, ecvrf, load_key_file
from swarmguard.crypto.hashing import address_of
from swarmguard.node.blocksync import SYNC_LAG
from swarmguard.node.config import load_home, write_testnet
from swarmguard.node.identity import node_id, public_key_of_pem, tls_context
from swarmguard.node.local import free_ports, spawn_node
from swarmguard.node.runtime import NodeConfig
from swarmguard.node.transactions import CreateValidator, Delegate, Transaction, Transfer
from swarmguard.node.transport import Channel, Peer
from swarmguard.storage.blockstore import BlockStore

TIMEOUT = 90.0


_STARTED: list[subprocess.Popen[bytes]] = []
_LOGS: list[Path] = []  # the logs of this test's nodes, shown when a wait times out


@pytest.fixture(autouse=True)
def _no_node_outlives_its_test() -> Iterator[None]:
    """Whatever a test did or failed to do, its node processes are gone before the next one
    starts (a leaked node holds ports and CPU, and turns the next test's timing into noise)."""
    yield
    _LOGS.clear()
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait()


class Process:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.log = home / "node.log"
        self.process: subprocess.Popen[bytes] | None = None
        if self.log not in _LOGS:
            _LOGS.append(self.log)

    def start(self) -> None:
        self.process = spawn_node(self.home)
        _STARTED.append(self.process)

    def height(self) -> int:
        height = 0
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                height = max(height, int(entry.get("height", 0)))
        return height

    def stop(self, signum: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()  # never leave one behind
                self.process.wait()
                raise AssertionError(f"{self.home.name} did not stop on signal {signum}") from None


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{_log_tails()}")
        time.sleep(0.2)


def _log_tails(lines: int = 15) -> str:
    """The end of every node log of the test, so a CI failure says what the nodes were doing."""
    shown = []
    for log in _LOGS:
        text = log.read_text(errors="replace").splitlines() if log.exists() else ["(no log)"]
        shown.append(f"--- {log.parent.name}/{log.name}\n" + "\n".join(text[-lines:]))
    return "\n".join(shown)


def port_groups(nodes: int, groups: int) -> list[list[int]]:
    """``groups`` lists of ``nodes`` ports, all distinct: picked in one call, since ports
    picked by separate calls may repeat once the first call's sockets are closed."""
    ports = free_ports(nodes * groups)
    return [ports[i * nodes : (i + 1) * nodes] for i in range(groups)]


def test_four_processes_agree_and_survive_a_kill(tmp_path: Path) -> None:
    ports = free_ports(4)
    homes = write_testnet(tmp_path, 4, ports=ports, genesis_time=int(time.time()))
    nodes = [Process(home) for home in homes]
    try:
        for node in nodes:
            node.start()
        wait_for(lambda: all(n.height() >= 3 for n in nodes), "height 3 everywhere")
        nodes[3].stop(signal.SIGKILL)  # no clean shutdown: the store and guard as they were
        killed_at = nodes[3].height()
        wait_for(lambda: nodes[0].height() >= killed_at + 3, "the others to go on")
        nodes[3].start()
        target = nodes[0].height() + 2
        wait_for(lambda: nodes[3].height() >= target, "the restarted node to catch up")
    finally:
        for node in nodes:
            node.stop()
    assert_identical_chains(homes, target)


def test_a_validator_killed_at_random_instants_never_double_signs(tmp_path: Path) -> None:
    """kill -9 at any instant: while blocks come every ~50 ms, validator 3 is SIGKILLed six
    times at random moments (during start-up, catch-up, voting, committing) and restarted with
    no repair each time. Nobody ever sees it equivocate (no double-sign evidence in any log:
    its guard record held), it rejoins and decides again, and all stores hold the same
    blocks."""
    homes = _fast_idle_testnet(tmp_path)
    nodes = [Process(home) for home in homes]
    chance = random.Random(11)
    try:
        for node in nodes:
            node.start()
        wait_for(lambda: all(n.height() >= 3 for n in nodes), "height 3 everywhere")
        for _ in range(6):
            time.sleep(chance.uniform(0.0, 2.5))
            nodes[3].stop(signal.SIGKILL)
            nodes[3].start()
        wait_for(lambda: _decided(nodes[3]) >= 3, "the last run to decide heights again")
        target = nodes[0].height() + 3
        wait_for(lambda: nodes[3].height() >= target, "the restarted node to keep up")
    finally:
        for node in nodes:
            node.stop()
    for node in nodes:
        assert "double-sign evidence" not in node.log.read_text(), node.home.name
    assert nodes[3].log.read_text().count('"message": "started"') >= 2  # killed after starting
    assert_identical_chains(homes, target)


def _three_of_four(where: Path, slack_ppm: int) -> dict[str, int]:
    """Four validators in genesis, three started: their counters once all are at height 12."""
    homes = write_testnet(
        where, 4, ports=free_ports(4), genesis_time=int(time.time()), fast_path_slack_ppm=slack_ppm
    )
    for home in homes:
        with (home / "config.toml").open("a") as config:
            config.write("\n[batch]\nempty_block_after = 0.05\n")
    nodes = [Process(home) for home in homes[:3]]  # the fourth never starts
    try:
        for node in nodes:
            node.start()
        wait_for(lambda: all(n.height() >= 12 for n in nodes), "height 12 on three nodes")
    finally:
        for node in nodes:
            node.stop()
    lines = [json.loads(line) for line in nodes[0].log.read_text().splitlines()]
    counts: dict[str, int] = [line for line in lines if line.get("message") == "height"][-1]
    return counts


def test_a_fast_path_slack_in_genesis_lets_three_of_four_commit_fast(tmp_path: Path) -> None:
    """With ``consensus_params.fast_path_slack_ppm`` = 250,000 (P = one of four equal
    validators, so F = 0: the trade the parameter makes) three running validators decide on
    the fast path (N - P of the power voted); without it the fast path needs all four, so the
    same three decide only on the slow path."""
    counts = _three_of_four(tmp_path / "slack", 250_000)
    assert counts["fast"] >= counts["decided"] - 2, counts
    counts = _three_of_four(tmp_path / "none", 0)
    assert counts["fast"] == 0, counts
    assert counts["slow"] >= 10, counts


def assert_identical_chains(homes: list[Path], at_least: int) -> None:
    """Every height all stores hold is the same block on every node, up to at least
    ``at_least``."""
    stores = [
        BlockStore(load_home(home).home / "blocks", load_home(home).chain_id) for home in homes
    ]
    try:
        common = min(store.height for store in stores)
        assert common >= at_least
        for height in range(max(store.base for store in stores), common + 1):
            hashes = {store.block_hash(store.block(height)) for store in stores}  # type: ignore[arg-type]
            assert len(hashes) == 1, f"height {height}: {len(hashes)} different blocks"
    finally:
        for store in stores:
            store.close()


def _fast_idle_testnet(
    tmp_path: Path,
    staking: dict[str, int] | None = None,
    *,
    more: str = "",
    ports: list[int] | None = None,
    api_ports: list[int] | None = None,
) -> list[Path]:
    homes = write_testnet(
        tmp_path,
        4,
        ports=ports or free_ports(4),
        api_ports=api_ports,
        genesis_time=int(time.time()),
        staking=staking,
    )
    for home in homes:  # idle blocks every ~50 ms, so a gap opens in seconds
        with (home / "config.toml").open("a") as config:
            config.write("\n[batch]\nempty_block_after = 0.05\n" + more)
    return homes


def _restart_far_behind(nodes: list[Process]) -> None:
    """Start all; SIGKILL the last one until the others are 20 heights past SYNC_LAG ahead of
    it; restart it."""
    for node in nodes:
        node.start()
    wait_for(lambda: all(n.height() >= 3 for n in nodes), "height 3 everywhere")
    nodes[-1].stop(signal.SIGKILL)
    killed_at = nodes[-1].height()
    wait_for(lambda: nodes[0].height() >= killed_at + SYNC_LAG + 20, "a gap over SYNC_LAG")
    nodes[-1].start()


def _decided(process: Process) -> int:
    """Heights this run of the process decided through consensus (not block sync)."""
    decided = 0
    for line in process.log.read_text().splitlines():
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("message") == "started":
            decided = 0
        decided = max(decided, int(entry.get("decided", 0)))
    return decided


def test_a_node_far_behind_catches_up_by_block_sync_and_rejoins(tmp_path: Path) -> None:
    """Killed, then more than SYNC_LAG heights behind: the restarted validator leaves
    consensus, fetches and verifies the blocks it missed, executes them, and rejoins consensus
    (a long downtime window keeps it in the set); the chains are identical."""
    homes = _fast_idle_testnet(tmp_path, {"signed_blocks_window": 100_000})
    nodes = [Process(home) for home in homes]
    try:
        _restart_far_behind(nodes)
        target = nodes[0].height() + 5
        wait_for(lambda: nodes[3].height() >= target, "the restarted node to catch up")
        synced = [
            json.loads(line)
            for line in nodes[3].log.read_text().splitlines()
            if "block sync: executed" in line
        ]
        assert synced, "the node caught up without block sync"
        assert int(synced[0]["message"].split()[3]) >= SYNC_LAG
        decided = _decided(nodes[3])
        wait_for(lambda: _decided(nodes[3]) >= decided + 10, "consensus decisions after the sync")
    finally:
        for node in nodes:
            node.stop()
    assert_identical_chains(homes, target)


def test_pruning_nodes_keep_their_window_and_serve_a_node_behind_from_it(
    tmp_path: Path,
) -> None:
    """With ``[storage] keep_recent = 256`` (the least allowed) every node deletes each block
    that leaves its window as it commits: a validator restarted more than SYNC_LAG behind still
    block-syncs from its pruning peers, and once the chain is past the window every store holds
    exactly its last 256 blocks, the same blocks on every node."""
    keep = 256
    ports, api_ports = port_groups(4, 2)
    homes = _fast_idle_testnet(
        tmp_path,
        {"signed_blocks_window": 100_000},
        more=f"\n[storage]\nkeep_recent = {keep}\n",
        ports=ports,
        api_ports=api_ports,
    )
    nodes = [Process(home) for home in homes]
    try:
        _restart_far_behind(nodes)
        target = keep + 40
        wait_for(lambda: min(n.height() for n in nodes) >= target, f"height {target} everywhere")
        assert "block sync: executed" in nodes[3].log.read_text()
        with grpc.insecure_channel(f"127.0.0.1:{api_ports[0]}") as channel:
            stub = node_pb2_grpc.NodeStub(channel)
            with pytest.raises(grpc.RpcError) as raised:
                stub.GetBlock(node_pb2.GetBlockRequest(height=1), timeout=5)
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND
            assert "block 1 is pruned: this node keeps blocks from" in raised.value.details()
            assert stub.GetBlock(node_pb2.GetBlockRequest(height=target), timeout=5).height
            status = stub.GetStatus(node_pb2.GetStatusRequest(), timeout=5)
            assert status.earliest_height == status.height - keep + 1
    finally:
        for node in nodes:
            node.stop()
    for home in homes:
        store = BlockStore(load_home(home).home / "blocks", load_home(home).chain_id)
        try:
            assert store.base == store.height - keep + 1, (home.name, store.base, store.height)
            assert store.block(store.base - 1) is None
            assert store.block(store.base) is not None
        finally:
            store.close()
    assert_identical_chains(homes, target)


def test_a_validator_behind_every_peers_window_jumps_ahead_by_state_sync(
    tmp_path: Path,
) -> None:
    """Four validators keep 256 blocks and snapshot every 50 heights; one is down while the
    others go more than 256 heights on, so every block it lacks is pruned everywhere.
    Restarted (state sync enabled), its block sync finds no peer holding its next height, so
    it restores the newest snapshot above its height into its own store (``jump_to``),
    block-syncs the rest and decides heights through consensus again; the chains agree."""
    keep = 256
    homes = _fast_idle_testnet(
        tmp_path,
        {"signed_blocks_window": 100_000},
        more=f"\n[storage]\nkeep_recent = {keep}\n"
        "\n[statesync]\nenabled = true\nsnapshot_interval = 50\nsnapshots_kept = 3\n",
    )
    nodes = [Process(home) for home in homes]
    try:
        for node in nodes:
            node.start()
        wait_for(lambda: all(n.height() >= 3 for n in nodes), "height 3 everywhere")
        nodes[3].stop(signal.SIGKILL)
        killed_at = nodes[3].height()
        wait_for(lambda: nodes[0].height() >= killed_at + keep + 60, "its blocks pruned")
        nodes[3].start()
        target = nodes[0].height() + 20
        wait_for(lambda: nodes[3].height() >= target, "the node to catch up")
        log = nodes[3].log.read_text()
        assert "state sync instead" in log
        restored = [
            json.loads(line)["message"]
            for line in log.splitlines()
            if "state sync: restored height" in line
        ]
        assert restored, "the node did not jump ahead by state sync"
        was_at = int(restored[-1].rsplit("(was at ", 1)[1].rstrip(")"))
        assert was_at >= killed_at  # its own store's height, not an empty store's 0
        decided = _decided(nodes[3])
        wait_for(lambda: _decided(nodes[3]) >= decided + 10, "consensus decisions after it")
    finally:
        for node in nodes:
            node.stop()
    store = BlockStore(load_home(homes[3]).home / "blocks", load_home(homes[3]).chain_id)
    try:
        jumped_to = int(restored[-1].split()[4])
        assert jumped_to % 50 == 0
        assert jumped_to > was_at
        assert store.history_base == jumped_to
    finally:
        store.close()
    assert_identical_chains(homes, target)


def test_a_jailed_validator_follows_the_chain_by_block_sync(tmp_path: Path) -> None:
    """Down long enough to be jailed for downtime, it is no longer in the set, so consensus
    does not answer it: it follows by block sync, a second behind at most."""
    homes = _fast_idle_testnet(tmp_path, {"signed_blocks_window": 20})
    nodes = [Process(home) for home in homes]
    try:
        _restart_far_behind(nodes)
        for _ in range(3):  # keeps up, again and again
            target = nodes[0].height()
            wait_for(lambda t=target: nodes[3].height() >= t, "the jailed node to follow")  # type: ignore[misc]
    finally:
        for node in nodes:
            node.stop()
    assert_identical_chains(homes, target)


def consecutive_free_ports(count: int) -> int:
    """A base port for ``swarmguard up``: base + i, and the same at +1000, +2000 and +3000
    (metrics, gRPC, HTTP), all free right now and below the ephemeral range, so no outgoing
    connection takes one between this check and the nodes binding them."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(10_000, 28_000)
        ports = [base + block + offset for block in range(0, 4000, 1000) for offset in range(count)]
        sockets = []
        try:
            for port in ports:
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise AssertionError("no free port range")


def test_up_runs_a_network_and_shows_it_live(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "swarmguard.cli",
            "up",
            "--home",
            str(tmp_path),
            "--duration",
            "6",
            "--base-port",
            str(consecutive_free_ports(4)),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("heights")]
    assert lines
    last = json.loads(lines[-1].split("  ")[0].removeprefix("heights "))
    assert min(last) >= 2  # every validator made progress
    assert "exited" not in result.stdout


def test_up_resumes_a_network_with_its_load(tmp_path: Path) -> None:
    """A second ``up --home`` on the same directory goes on from the first's heights, and its
    load starts from the accounts' next nonces (it signed from 0 and every transfer was
    refused as a replay) once the API answers (the view no longer reads the last run's log)."""
    base = str(consecutive_free_ports(4))
    runs = [
        cli("up", "--home", str(tmp_path), "--duration", "7", "--load", "50", "--base-port", base)
        for _ in range(2)
    ]
    tops = []
    for run in runs:
        assert run.returncode == 0, run.stderr
        last = [line for line in run.stdout.splitlines() if line.startswith("heights")][-1]
        tops.append(max(json.loads(last.split("  ")[0].removeprefix("heights "))))
        assert int(last.split("tx/s")[0].split()[-1]) > 0, last  # the load commits
    assert tops[1] > tops[0]


def test_up_says_why_a_node_exited_and_stops_when_none_is_left(tmp_path: Path) -> None:
    """Another program holds the API port of the only validator: ``up`` prints the node's own
    refusal (the field and the port) and exits with 1 instead of showing height 0 forever; a
    count or port out of range is a usage error."""
    base = consecutive_free_ports(1)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", base + 2000))
        holder.listen()
        result = cli(
            "up", "--home", str(tmp_path), "--validators", "1", "--duration", "60",
            "--base-port", str(base),
        )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "node0 exited with code 2" in result.stderr
    assert f"node.api: cannot listen on 127.0.0.1:{base + 2000}: address in use" in result.stderr
    for wrong in (["--validators", "0"], ["--base-port", "80"]):
        refused = cli("up", *wrong, "--duration", "1")
        assert refused.returncode == 2
        assert "expected" in refused.stderr


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``swarmguard *args`` as a client process would run it."""
    return subprocess.run(
        [sys.executable, "-m", "swarmguard.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_a_single_validator_chain_runs_alone(tmp_path: Path) -> None:
    """One validator and no peers (a development chain): it has no one to listen for, decides
    every height with its own votes, and serves clients."""
    ports, api_ports = port_groups(1, 2)
    (home,) = write_testnet(
        tmp_path, 1, ports=ports, api_ports=api_ports, genesis_time=int(time.time())
    )
    node = Process(home)
    try:
        node.start()
        wait_for(lambda: node.height() >= 2, "height 2")
        sent = cli(
            "tx",
            "transfer",
            "--key",
            str(home / "operator_key.json"),
            "--to",
            "cd" * 20,
            "--amount",
            "7",
            "--wait",
            "--node",
            f"127.0.0.1:{api_ports[0]}",
        )
        assert sent.returncode == 0, sent.stderr + sent.stdout
        queried = cli("query", "account", "cd" * 20, "--node", f"127.0.0.1:{api_ports[0]}")
        assert json.loads(queried.stdout)["balance"] == 7
    finally:
        node.stop()
    assert "no peers configured, not listening" in node.log.read_text()


def test_a_node_added_to_the_peers_by_a_reload_joins_without_a_restart(tmp_path: Path) -> None:
    """An operator lists a new node in the validators' ``[[peers]]`` and sends them SIGHUP:
    none restarts, and the new node (which lists them from the start, and which they refused
    until then: their TLS trusts only configured peers) catches up by block sync."""
    (ports,) = port_groups(5, 1)
    homes = write_testnet(tmp_path, 4, ports=ports, genesis_time=int(time.time()), full_nodes=1)
    configs = {home: (home / "config.toml").read_text() for home in homes[:4]}
    for home, text in configs.items():  # the validators do not know node 4 yet
        sections = text.split("[[peers]]")
        kept = [part for part in sections[1:] if not part.lstrip().startswith("id = 4\n")]
        assert len(kept) == len(sections) - 2
        (home / "config.toml").write_text("[[peers]]".join([sections[0], *kept]))
    validators, newcomer = [Process(home) for home in homes[:4]], Process(homes[4])
    try:
        for node in validators:
            node.start()
        wait_for(lambda: all(n.height() >= 3 for n in validators), "height 3 everywhere")
        newcomer.start()
        time.sleep(3)
        assert newcomer.height() == 0  # nobody lets it in
        for home, text in configs.items():
            (home / "config.toml").write_text(text)
        for node in validators:
            assert node.process is not None
            node.process.send_signal(signal.SIGHUP)
        target = validators[0].height() + 2
        wait_for(lambda: newcomer.height() >= target, "the new node to catch up")
    finally:
        for node in [*validators, newcomer]:
            node.stop()
    for node in validators:
        log = node.log.read_text()
        assert log.count('"message": "started"') == 1
        assert '"message": "peers reloaded", "added": [4], "removed": []' in log


def test_staking_from_the_command_line(tmp_path: Path) -> None:
    """Every staking transaction of the built-in ledger from ``swarmguard tx``, with key files
    from ``swarmguard keys generate``, against one validator: a new account registers as a
    validator, the operator delegates to it, moves part of it back and unbonds some; a refused
    transaction (unjail of a validator that is not jailed) exits with 1 and says why."""
    ports, api_ports = port_groups(1, 2)
    (home,) = write_testnet(
        tmp_path, 1, ports=ports, api_ports=api_ports, genesis_time=int(time.time())
    )
    node_address = f"127.0.0.1:{api_ports[0]}"
    operator_key = str(home / "operator_key.json")
    operator = address_of(SigningKey(load_key_file(home / "operator_key.json")[1]).public_key.raw)
    for name, kind in (("account", "ed25519"), ("consensus", "ed25519"), ("vrf", "ecvrf")):
        made = cli("keys", "generate", "--kind", kind, str(tmp_path / f"{name}.json"))
        assert made.returncode == 0, made.stderr
    newcomer = address_of(SigningKey(load_key_file(tmp_path / "account.json")[1]).public_key.raw)

    def tx(*args: str, key: str = operator_key) -> subprocess.CompletedProcess[str]:
        return cli("tx", *args, "--key", key, "--wait", "--node", node_address)

    node = Process(home)
    try:
        node.start()
        wait_for(lambda: node.height() >= 1, "height 1")
        steps = [
            tx("transfer", "--to", newcomer.hex(), "--amount", "50000"),
            tx(
                "create-validator",
                "--consensus-key",
                str(tmp_path / "consensus.json"),
                "--vrf-key",
                str(tmp_path / "vrf.json"),
                "--self-bond",
                "20000",
                "--commission-ppm",
                "50000",
                key=str(tmp_path / "account.json"),
            ),
            tx("delegate", "--validator", newcomer.hex(), "--amount", "3000"),
            tx(
                "redelegate",
                "--source",
                newcomer.hex(),
                "--destination",
                operator.hex(),
                "--amount",
                "1000",
            ),
            tx("unbond", "--validator", operator.hex(), "--amount", "500"),
        ]
        for step in steps:
            assert step.returncode == 0, step.stdout + step.stderr
            assert json.loads(step.stdout)["admission"] == "accepted"
        refused = tx("unjail")
        assert refused.returncode == 1
        assert "jail" in json.loads(refused.stdout)["log"]
        shown = cli("query", "validators", "--node", node_address)
        assert json.loads(shown.stdout)["validators"]
        wrong = cli("query", "account", "not-hex", "--node", node_address)
        assert wrong.returncode == 2
        assert "an address is 40 hex digits" in wrong.stderr
    finally:
        node.stop()


def test_clients_talk_to_real_processes_over_grpc_and_http(tmp_path: Path) -> None:
    """`swarmguard tx`, `query` and `status` against `swarmguard node` processes, and the
    HTTP/JSON twin with its OpenAPI document."""
    ports, api_ports, http_ports = port_groups(4, 3)
    homes = write_testnet(
        tmp_path,
        4,
        ports=ports,
        api_ports=api_ports,
        http_ports=http_ports,
        genesis_time=int(time.time()),
    )
    nodes = [Process(home) for home in homes]
    try:
        for node in nodes:
            node.start()
        wait_for(lambda: all(n.height() >= 2 for n in nodes), "height 2 everywhere")
        recipient = "ab" * 20
        sent = cli(
            "tx",
            "transfer",
            "--key",
            str(homes[0] / "operator_key.json"),
            "--to",
            recipient,
            "--amount",
            "5",
            "--wait",
            "--node",
            f"127.0.0.1:{api_ports[1]}",
        )
        assert sent.returncode == 0, sent.stderr + sent.stdout
        queried = cli("query", "account", recipient, "--node", f"127.0.0.1:{api_ports[2]}")
        assert queried.returncode == 0, queried.stderr
        assert json.loads(queried.stdout)["balance"] == 5
        status = cli("status", "--node", f"127.0.0.1:{api_ports[3]}")
        shown = json.loads(status.stdout)
        assert shown["chainId"] == "swarmguard-testnet"
        assert len(bytes.fromhex(shown["lastBlockHash"])) == 32  # hex, as trust_hash takes it
        with urllib.request.urlopen(f"http://127.0.0.1:{http_ports[0]}/openapi.json") as answer:
            assert "/v1/SubmitTransaction" in json.loads(answer.read())["paths"]
        request = urllib.request.Request(
            f"http://127.0.0.1:{http_ports[0]}/v1/GetStatus", data=b"{}", method="POST"
        )
        with urllib.request.urlopen(request) as answer:
            assert int(json.loads(answer.read())["height"]) >= 2
    finally:
        for node in nodes:
            node.stop()


def test_a_double_signing_process_is_caught_slashed_and_removed(tmp_path: Path) -> None:
    """Node 3 runs with the test-only fault switch: every Vote it sends comes with a
    conflicting one. The others turn the pair into evidence, submit it signed by their operator
    keys, the ledger slashes and jails the offender, and at the next epoch boundary (every 4
    blocks here) it leaves the validator set while the chain goes on."""
    ports, api_ports = port_groups(4, 2)
    homes = write_testnet(
        tmp_path,
        4,
        ports=ports,
        api_ports=api_ports,
        genesis_time=int(time.time()),
        staking={"epoch_length": 4},
    )
    with (homes[3] / "config.toml").open("a") as config:
        config.write("\n[consensus]\ndouble_sign_for_tests = true\n")
    offender = load_home(homes[3]).consensus_key.public_key.raw
    nodes = [Process(home) for home in homes]

    def members() -> list[bytes]:
        with grpc.insecure_channel(f"127.0.0.1:{api_ports[0]}") as channel:
            stub = node_pb2_grpc.NodeStub(channel)
            answer = stub.GetValidators(node_pb2.GetValidatorsRequest(), timeout=5)
            return [v.consensus_key for v in answer.validators]

    try:
        for node in nodes:
            node.start()
        wait_for(lambda: all(n.height() >= 1 for n in nodes), "height 1 everywhere")
        wait_for(lambda: offender not in members(), "the double signer to leave the set")
        assert len(members()) == 3  # the genesis set had all four
        height = nodes[0].height()
        wait_for(lambda: nodes[0].height() >= height + 3, "the chain to go on without it")
    finally:
        for node in nodes:
            node.stop()


def test_staking_transactions_change_the_set_at_the_epoch_boundary(tmp_path: Path) -> None:
    """A new validator registers over gRPC (funded by an operator's transfer, then its own
    create_validator with a small bond): it joins the set at the next boundary of 4 blocks, and
    the four running validators keep deciding."""
    ports, api_ports = port_groups(4, 2)
    homes = write_testnet(
        tmp_path,
        4,
        ports=ports,
        api_ports=api_ports,
        genesis_time=int(time.time()),
        staking={"epoch_length": 4},
    )
    operator = SigningKey(load_key_file(homes[0] / "operator_key.json")[1])
    newcomer, consensus = SigningKey(b"n" * 32), SigningKey(b"c" * 32)
    nodes = [Process(home) for home in homes]
    try:
        for node in nodes:
            node.start()
        wait_for(lambda: all(n.height() >= 1 for n in nodes), "height 1 everywhere")
        with grpc.insecure_channel(f"127.0.0.1:{api_ports[1]}") as channel:
            stub = node_pb2_grpc.NodeStub(channel)

            def submit(transaction: Transaction) -> None:
                request = node_pb2.SubmitTransactionRequest(
                    transaction=transaction.encode(), wait_for_commit=True, timeout_seconds=60
                )
                answer = stub.SubmitTransaction(request, timeout=90)
                assert (answer.admission, answer.code) == ("accepted", 0), answer

            chain = "swarmguard-testnet"
            fund = Transfer(address_of(newcomer.public_key.raw), 10_000)
            submit(Transaction.sign(operator, chain, 0, fund))
            join = CreateValidator(consensus.public_key.raw, ecvrf.public_key(b"v" * 32), 0, 5_000)
            submit(Transaction.sign(newcomer, chain, 0, join))

            def members() -> list[bytes]:
                answer = stub.GetValidators(node_pb2.GetValidatorsRequest(), timeout=5)
                return [v.consensus_key for v in answer.validators]

            wait_for(lambda: consensus.public_key.raw in members(), "the newcomer in the set")
            assert len(members()) == 5
        height = nodes[0].height()
        wait_for(lambda: nodes[0].height() >= height + 3, "the chain to go on with five")
    finally:
        for node in nodes:
            node.stop()


async def _send_frames(
    attacker: NodeConfig, target: Peer, certificate: Path, key: Path, frames: list[bytes]
) -> bool:
    """Connect to ``target`` as ``attacker`` (its real key: a trusted peer gone bad), write
    ``frames``; returns whether the target closed the connection within 5 s."""
    context = tls_context(
        server=False, certificate=certificate, key=key, trusted=[target.certificate]
    )
    reader, writer = await asyncio.open_connection(
        target.host,
        target.port,
        ssl=context,
        server_hostname=node_id(public_key_of_pem(target.certificate)),
    )
    for frame in frames:
        writer.write(frame)
    await writer.drain()
    try:  # the node may have sent us its own frames first: read until the end of the stream
        async with asyncio.timeout(5.0):
            while await reader.read(65536):
                pass
        closed = True
    except TimeoutError:
        closed = False
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):  # the node may have cut it first
        await writer.wait_closed()
    return closed


def _frame(channel: int, payload: bytes, version: int = 1) -> bytes:
    return (len(payload) + 2).to_bytes(4, "big") + bytes((version, channel)) + payload


def test_malformed_frames_from_a_trusted_peer_never_crash_a_node(tmp_path: Path) -> None:
    """A validator's own key sends garbage payloads on every channel (counted, connection
    kept), then a bad version, an unknown channel, a bad length and random bytes (each closes
    the connection); the nodes it hit go on committing."""
    homes = write_testnet(tmp_path, 4, ports=free_ports(4), genesis_time=int(time.time()))
    configs = [load_home(home) for home in homes]
    # The attacker is the peer the others accept connections from (the lowest node id dials).
    attacker = min(range(4), key=lambda i: configs[i].node_identity.id)
    nodes = {i: Process(homes[i]) for i in range(4) if i != attacker}
    certificate, key = configs[attacker].node_identity.write_tls_files(tmp_path / "attacker")
    try:
        for node in nodes.values():
            node.start()
        wait_for(lambda: all(n.height() >= 3 for n in nodes.values()), "height 3 everywhere")
        kept = [
            _frame(Channel.CONSENSUS, b"not a message"),
            _frame(Channel.MEMPOOL, b"\x01\xff\xff\xff\xff"),
            _frame(Channel.SYNC, b"\x01\x02\x00"),
        ]
        closing = [
            _frame(Channel.CONSENSUS, b"x", version=9),
            _frame(77, b"x"),
            (1).to_bytes(4, "big") + b"\x01",
            b"\xff\xff\xff\xff" + os.urandom(4096),  # a length no frame may have
        ]
        for peer in configs[attacker].peers:
            assert not asyncio.run(_send_frames(configs[attacker], peer, certificate, key, kept)), (
                "a bad payload closed the connection"
            )
            for frame in closing:
                assert asyncio.run(_send_frames(configs[attacker], peer, certificate, key, [frame]))
        heights = {i: node.height() for i, node in nodes.items()}
        wait_for(lambda: all(nodes[i].height() >= heights[i] + 3 for i in nodes), "blocks after it")
        assert all(
            node.process is not None and node.process.poll() is None for node in nodes.values()
        )
        malformed = [
            max(
                int(json.loads(line).get("malformed_messages", 0))
                for line in node.log.read_text().splitlines()
                if line.startswith("{")
            )
            for node in nodes.values()
        ]
        assert all(count >= len(kept) for count in malformed), malformed
    finally:
        for node in nodes.values():
            node.stop()


def test_a_new_node_joins_by_state_sync(tmp_path: Path) -> None:
    """Validators snapshot every 20 heights; early on an operator adds to its own stake, so the
    set changes at an epoch boundary (every 4 blocks) long before the snapshots. A new full node
    with an empty store follows the validator-set hand-overs from the genesis set, restores the
    newest snapshot its peers offer (checked against certified headers of the set it reached),
    block-syncs the rest, and follows the chain: it never stores a block below the snapshot's
    height."""
    ports, api_ports = port_groups(5, 2)
    homes = write_testnet(
        tmp_path,
        4,
        ports=ports,
        api_ports=api_ports,
        genesis_time=int(time.time()),
        full_nodes=1,
        staking={"epoch_length": 4},
    )
    for home in homes[:4]:
        with (home / "config.toml").open("a") as config:
            config.write("\n[batch]\nempty_block_after = 0.05\n")
            config.write("\n[statesync]\nsnapshot_interval = 20\nsnapshots_kept = 10\n")
    with (homes[4] / "config.toml").open("a") as config:
        config.write("\n[statesync]\nenabled = true\n")
    operator = SigningKey(load_key_file(homes[0] / "operator_key.json")[1])
    validators = [Process(home) for home in homes[:4]]
    newcomer = Process(homes[4])
    try:
        for node in validators:
            node.start()
        wait_for(lambda: all(n.height() >= 1 for n in validators), "height 1 everywhere")
        with grpc.insecure_channel(f"127.0.0.1:{api_ports[0]}") as channel:
            stub = node_pb2_grpc.NodeStub(channel)
            before = list(stub.GetValidators(node_pb2.GetValidatorsRequest(), timeout=5).validators)
            more = Delegate(address_of(operator.public_key.raw), 50_000)
            request = node_pb2.SubmitTransactionRequest(
                transaction=Transaction.sign(operator, "swarmguard-testnet", 0, more).encode(),
                wait_for_commit=True,
                timeout_seconds=60,
            )
            answer = stub.SubmitTransaction(request, timeout=90)
            assert (answer.admission, answer.code) == ("accepted", 0), answer

            def powers() -> list[int]:
                reply = stub.GetValidators(node_pb2.GetValidatorsRequest(), timeout=5)
                return [v.power for v in reply.validators]

            wait_for(lambda: powers() != [v.power for v in before], "the set to change")
            assert validators[0].height() < 40
        wait_for(lambda: validators[0].height() >= 50, "snapshots at 20 and 40")
        newcomer.start()
        target = validators[0].height() + 5
        wait_for(lambda: newcomer.height() >= target, "the new node to catch up")
        restored = [
            json.loads(line)["message"]
            for line in newcomer.log.read_text().splitlines()
            if "state sync: restored height" in line
        ]
        assert restored, "the new node did not restore a snapshot"
        height = int(restored[0].split()[4])
        assert height >= 40
        assert height % 20 == 0
    finally:
        for node in [*validators, newcomer]:
            node.stop()
    newcomer_store = BlockStore(load_home(homes[4]).home / "blocks", load_home(homes[4]).chain_id)
    try:
        assert newcomer_store.base == height
    finally:
        newcomer_store.close()
    assert_identical_chains(homes, target)
