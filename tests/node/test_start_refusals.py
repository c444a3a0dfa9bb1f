"""A node whose stored data it cannot use says why and exits with code 2 (no traceback, no
half-started process): here a block store written for another chain."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from swarmguard.node.config import load_home, write_testnet
from swarmguard.node.local import free_ports
from swarmguard.storage.blockstore import BlockStore


def test_a_store_of_another_chain_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    (home,) = write_testnet(tmp_path, 1, ports=free_ports(1), genesis_time=int(time.time()))
    BlockStore(load_home(home).home / "blocks", "some-other-chain").close()
    done = subprocess.run(
        [sys.executable, "-m", "swarmguard.cli", "node", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "error: cannot start on" in done.stderr
    assert "some-other-chain" in done.stderr
    assert "Traceback" not in done.stderr
