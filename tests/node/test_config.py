"""The home directory: testnet output loads, environment overrides apply, and every mistake is
refused with the field named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swarmguard.node.config import ConfigError, load_home, write_testnet


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return write_testnet(tmp_path, 3, chain_id="cfg-test", ports=[31000, 31001, 31002])[0]


def test_a_testnet_home_loads(home: Path) -> None:
    config = load_home(home, environ={})
    assert config.chain_id == "cfg-test"
    assert (config.host, config.port) == ("127.0.0.1", 31000)
    assert sorted(config.peer_keys) == [1, 2]
    assert [p.port for p in config.peers] == [31001, 31002]
    assert config.batch.timeout == 0.01  # the node default (NODE_DEFAULTS)


def test_environment_overrides(home: Path) -> None:
    environ = {"SWARMGUARD_NODE_LISTEN": "0.0.0.0:40000", "SWARMGUARD_BATCH_TIMEOUT": "0.2"}
    config = load_home(home, environ=environ)
    assert (config.host, config.port) == ("0.0.0.0", 40000)
    assert config.batch.timeout == 0.2


def test_the_fast_path_slack_comes_from_genesis(home: Path) -> None:
    assert load_home(home, environ={}).slack_ppm == 0
    path = home / "genesis.json"
    genesis = json.loads(path.read_text())
    genesis["consensus_params"] = {"fast_path_slack_ppm": 142_858}
    path.write_text(json.dumps(genesis))
    assert load_home(home, environ={}).slack_ppm == 142_858
    del genesis["consensus_params"]  # optional: a genesis without it has no slack
    path.write_text(json.dumps(genesis))
    assert load_home(home, environ={}).slack_ppm == 0
    for params in ({"fast_path_slack_ppm": 500_000}, {"fast_path_slack_ppm": "1"}, {"p": 1}):
        genesis["consensus_params"] = params
        path.write_text(json.dumps(genesis))
        with pytest.raises(ConfigError) as raised:
            load_home(home, environ={})
        assert raised.value.field == "genesis.json"


def test_a_trusted_header_is_read(home: Path) -> None:
    path = home / "config.toml"
    block_hash = "ab" * 32
    path.write_text(
        path.read_text() + f"\n[statesync]\ntrust_height = 7\ntrust_hash = '{block_hash}'\n"
    )
    assert load_home(home, environ={}).statesync.trust == (7, bytes.fromhex(block_hash))
    assert load_home(home, environ={"SWARMGUARD_STATESYNC_TRUST_HEIGHT": "9"}).statesync.trust == (
        9,
        bytes.fromhex(block_hash),
    )
    assert load_home(home, environ={}).statesync.trust_period == 14 * 86400  # the default
    period = {"SWARMGUARD_STATESYNC_TRUST_PERIOD": "3600"}
    assert load_home(home, environ=period).statesync.trust_period == 3600


@pytest.mark.parametrize(
    ("append", "field"),
    [
        ("[batch]\ntimeout = -1\n", "batch"),
        ("[batch]\ntimeout = 'soon'\n", "batch.timeout"),
        ("[mempool]\nmax_sizes = 3\n", "mempool.max_sizes"),
        ("[gossip]\nfanout = 3\n", "gossip"),
        ("[statesync]\ntrust_height = 5\n", "statesync"),  # no hash
        ("[statesync]\ntrust_hash = '" + "ab" * 32 + "'\n", "statesync"),  # no height
        ("[statesync]\ntrust_height = 5\ntrust_hash = 'xyz'\n", "statesync"),
        ("[statesync]\ntrust_height = -1\n", "statesync"),
        ("[statesync]\ntrust_period = -1\n", "statesync"),
        ("[storage]\nkeep_recent = 100\n", "storage"),  # under KEEP_RECENT_MIN
    ],
)
def test_mistakes_name_the_field(home: Path, append: str, field: str) -> None:
    path = home / "config.toml"
    path.write_text(path.read_text() + "\n" + append)
    with pytest.raises(ConfigError) as raised:
        load_home(home, environ={})
    assert raised.value.field == field


def test_pruning_is_configured_in_storage(home: Path) -> None:
    assert load_home(home, environ={}).storage.keep_recent == 0  # keep every block
    path = home / "config.toml"
    path.write_text(path.read_text() + "\n[storage]\nkeep_recent = 10000\n")
    assert load_home(home, environ={}).storage.keep_recent == 10_000
    environ = {"SWARMGUARD_STORAGE_KEEP_RECENT": "500"}
    assert load_home(home, environ=environ).storage.keep_recent == 500


def test_bad_listen_address_and_missing_key(home: Path) -> None:
    with pytest.raises(ConfigError, match="node.listen"):
        load_home(home, environ={"SWARMGUARD_NODE_LISTEN": "nowhere"})
    (home / "consensus_key.json").unlink()
    with pytest.raises(ConfigError, match="consensus_key.json"):
        load_home(home, environ={})


def test_testnet_never_overwrites_keys(tmp_path: Path) -> None:
    write_testnet(tmp_path, 2, ports=[31010, 31011])
    with pytest.raises(FileExistsError):
        write_testnet(tmp_path, 2, ports=[31010, 31011])
