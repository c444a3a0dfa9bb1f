"""A node that cannot start safely says why and exits with code 2 (no traceback, no
half-started process): a block store written for another chain, state sync from a genesis
older than the trust period, or an address it cannot listen on."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swarmguard.node.config import load_home, write_testnet
from swarmguard.node.local import free_ports
from swarmguard.storage.blockstore import BlockStore


def _refused(home: Path) -> subprocess.CompletedProcess[str]:
    """``swarmguard node`` on ``home``: it must exit with code 2 and no traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "swarmguard.cli", "node", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    return done


def test_a_store_of_another_chain_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    (home,) = write_testnet(tmp_path, 1, ports=free_ports(1), genesis_time=int(time.time()))
    BlockStore(load_home(home).home / "blocks", "some-other-chain").close()
    done = _refused(home)
    assert "error: cannot start on" in done.stderr
    assert "some-other-chain" in done.stderr


def test_state_sync_from_an_old_genesis_is_refused_naming_the_fix(tmp_path: Path) -> None:
    """Genesis 30 days ago, trust period 14 days (the default), no trusted header: the sets
    since genesis may have unbonded, so the node refuses to follow them and says what to set."""
    (home,) = write_testnet(
        tmp_path, 1, ports=free_ports(1), genesis_time=int(time.time()) - 30 * 86400
    )
    with (home / "config.toml").open("a") as config:
        config.write("\n[statesync]\nenabled = true\n")
    done = _refused(home)
    assert "genesis is 30.0 days old, beyond [statesync] trust_period (14.0 days)" in done.stderr
    assert "trust_height and trust_hash" in done.stderr


@pytest.mark.parametrize("field", ["listen", "api", "http", "metrics"])
def test_an_address_in_use_is_refused_naming_the_field(tmp_path: Path, field: str) -> None:
    """Another program holds the port: the node names the line of config.toml to change and
    exits (no traceback), rather than run unreachable. The API's gRPC
    server does not share a port (gRPC sets SO_REUSEPORT unless told not to): a second node
    on the same port would silently take half the calls of the first."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        ports = free_ports(5)
        chosen = {name: [ports[i]] for i, name in enumerate(["listen", "api", "http", "metrics"])}
        chosen[field] = [busy]
        # Two validators, so the node has a peer and listens for it.
        homes = write_testnet(
            tmp_path,
            2,
            ports=[*chosen["listen"], ports[4]],
            api_ports=[*chosen["api"], 0],
            http_ports=[*chosen["http"], 0],
            metrics_ports=[*chosen["metrics"], 0],
            genesis_time=int(time.time()),
        )
        done = _refused(homes[0])
    assert f"node.{field}: cannot listen on 127.0.0.1:{busy}" in done.stderr
