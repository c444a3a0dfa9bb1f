"""A node's home directory: what ``swarmguard testnet`` writes and ``swarmguard node`` reads.

Layout::

    <home>/config.toml          this node's settings (below)
    <home>/genesis.json         {"chain_id", "genesis_time", "consensus_params", "app_state"}:
                                the same on every node; consensus_params (optional) holds
                                "fast_path_slack_ppm" (validators.sets.fast_path_slack, 0)
    <home>/consensus_key.json   Ed25519 key file (crypto.keys format, mode 0600)
    <home>/node_key.json        Ed25519 key file: the transport identity
    <home>/operator_key.json    Ed25519 key file: the validator's account (optional; signs the
                                evidence transactions the node submits)
    <home>/vrf_key.json         ECVRF key file: the VRF key the validator registered (proves
                                the leader seed in its proposals; a full node has none)
    <home>/peers/<id>.pem       each peer's TLS certificate (its trust anchor and identity)
    <home>/data/                block store, double-sign guard record, TLS files

``config.toml``::

    [node]
    listen = "127.0.0.1:26656"
    metrics = "127.0.0.1:9090"      # /metrics, /healthz, /readyz; "off" to disable
    api = "127.0.0.1:50051"         # the gRPC API; "off" to disable
    http = "127.0.0.1:8080"         # the same over HTTP/JSON, /openapi.json; "off" to disable
    api_tls_cert = "api/cert.pem"   # optional: TLS for both APIs (node.apitls), paths from the
    api_tls_key = "api/key.pem"     #   home; both or neither; the certificate names the
    api_tls_client_ca = "api/ca.pem"  # address clients use; optional: require client certs
    [[peers]]
    id = 1
    address = "127.0.0.1:26657"
    consensus_key = "<64 hex>"      # the validator key the peer runs
    certificate = "peers/1.pem"
    [consensus]  # node.runtime.ConsensusOptions fields (fast_path)
    [statesync]  # node.runtime.StateSyncOptions fields (enabled, snapshot_interval,
                 # snapshots_kept, trust_height, trust_hash, trust_period)
    [storage]    # node.runtime.StorageOptions fields (keep_recent)
    [batch]      # consensus.batching.BatchConfig fields
    [mempool]    # node.mempool.MempoolConfig fields
    [transport]  # node.transport.TransportConfig fields
    [limits]     # node.chain.ChainLimits fields

Every section's fields default to the dataclass's (except ``NODE_DEFAULTS``).
``SWARMGUARD_<SECTION>_<FIELD>`` in the environment overrides a scalar
(``SWARMGUARD_NODE_LISTEN``, ``SWARMGUARD_BATCH_TIMEOUT``). Any problem stops start-up with a
``ConfigError`` naming the field.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from swarmguard.consensus.batching import BatchConfig
from swarmguard.crypto import KeyFileError, SigningKey, load_key_file, write_key_file
from swarmguard.crypto.hashing import address_of
from swarmguard.crypto.keys import public_key_of
from swarmguard.node.apitls import ApiTls
from swarmguard.node.chain import ChainLimits
from swarmguard.node.identity import NodeIdentity
from swarmguard.node.mempool import MempoolConfig
from swarmguard.node.runtime import (
    ConsensusOptions,
    NodeConfig,
    StateSyncOptions,
    StorageOptions,
)
from swarmguard.node.transport import Peer, TransportConfig
from swarmguard.validators.sets import SLACK_PPM_LIMIT

__all__ = ["ConfigError", "load_home", "write_testnet"]

_SECTIONS: dict[str, type] = {
    "consensus": ConsensusOptions,
    "statesync": StateSyncOptions,
    "storage": StorageOptions,
    "batch": BatchConfig,
    "mempool": MempoolConfig,
    "transport": TransportConfig,
    "limits": ChainLimits,
}


NODE_DEFAULTS: dict[str, dict[str, Any]] = {"batch": {"timeout": 0.01}}
"""Where a node's default differs from the dataclass's: a leader waits 10 ms for a batch to fill
(the simulator's 50 ms suits its coarser clock; on a node it would be most of an idle commit)."""


class ConfigError(ValueError):
    """Invalid configuration; the message starts with the field's name."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def _address(field: str, value: object) -> tuple[str, int]:
    if not isinstance(value, str) or value.count(":") != 1:
        raise ConfigError(field, f"expected 'host:port', got {value!r}")
    host, port = value.split(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(field, f"bad port in {value!r}")
    return host, int(port)


def _scalar(field: str, kind: type, value: object) -> object:
    """Coerce an environment string or check a TOML value against a dataclass field type."""
    if isinstance(value, str) and kind is not str:
        try:
            value = kind(value)
        except ValueError:
            raise ConfigError(field, f"expected {kind.__name__}, got {value!r}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise ConfigError(field, f"expected {kind.__name__}, got {value!r}")
    return value


def _section(name: str, values: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
    cls = _SECTIONS[name]
    kinds = {f.name: f.type for f in dataclasses.fields(cls)}
    merged = {**NODE_DEFAULTS.get(name, {}), **values}
    for field in kinds:
        variable = f"SWARMGUARD_{name.upper()}_{field.upper()}"
        if variable in environ:
            merged[field] = environ[variable]
    arguments = {}
    for field, value in merged.items():
        if field not in kinds:
            raise ConfigError(f"{name}.{field}", "unknown field")
        kind = {"int": int, "float": float, "str": str, "bool": bool}.get(str(kinds[field]))
        if kind is None:
            raise ConfigError(f"{name}.{field}", "not settable from a file")
        arguments[field] = _scalar(f"{name}.{field}", kind, value)
    try:
        return cls(**arguments)
    except ValueError as error:
        raise ConfigError(name, str(error)) from None


def load_home(home: Path, environ: Mapping[str, str] | None = None) -> NodeConfig:
    """Read and check a node's home directory (see the module docstring)."""
    environ = os.environ if environ is None else environ
    try:
        document = tomllib.loads((home / "config.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError("config.toml", str(error)) from None
    try:
        genesis = json.loads((home / "genesis.json").read_text())
        chain_id, genesis_time = str(genesis["chain_id"]), int(genesis["genesis_time"])
        app_state = json.dumps(genesis["app_state"], sort_keys=True).encode()
        params = dict(genesis.get("consensus_params", {}))
        slack_ppm = params.pop("fast_path_slack_ppm", 0)
        if params:
            raise ValueError(f"unknown consensus_params {sorted(params)}")
        if type(slack_ppm) is not int or not 0 <= slack_ppm < SLACK_PPM_LIMIT:
            raise ValueError(f"fast_path_slack_ppm must be an integer in 0..{SLACK_PPM_LIMIT - 1}")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError("genesis.json", str(error)) from None
    unknown = set(document) - {"node", "peers", *_SECTIONS}
    if unknown:
        raise ConfigError(sorted(unknown)[0], "unknown section")
    node = dict(document.get("node", {}))
    for field in _NODE_FIELDS:
        if f"SWARMGUARD_NODE_{field.upper()}" in environ:
            node[field] = environ[f"SWARMGUARD_NODE_{field.upper()}"]
    unknown_fields = set(node) - set(_NODE_FIELDS)
    if unknown_fields:
        raise ConfigError(f"node.{sorted(unknown_fields)[0]}", "unknown field")
    api_tls = _api_tls(home, node)
    host, port = _address("node.listen", node.get("listen", "127.0.0.1:26656"))
    served: dict[str, tuple[str, int] | None] = {}
    for field, default in (("metrics", "9090"), ("api", "50051"), ("http", "8080")):
        value = node.get(field, f"127.0.0.1:{default}")
        served[field] = None if value == "off" else _address(f"node.{field}", value)
    peers, peer_keys = [], {}
    for number, entry in enumerate(document.get("peers", [])):
        where = f"peers[{number}]"
        peer_id = entry.get("id")
        if not isinstance(peer_id, int) or isinstance(peer_id, bool) or peer_id < 0:
            raise ConfigError(f"{where}.id", f"expected a peer number, got {peer_id!r}")
        peer_host, peer_port = _address(f"{where}.address", entry.get("address"))
        try:
            key = bytes.fromhex(str(entry.get("consensus_key", "")))
            certificate = (home / str(entry.get("certificate", ""))).read_bytes()
        except (ValueError, OSError) as error:
            raise ConfigError(where, str(error)) from None
        if len(key) != 32:
            raise ConfigError(f"{where}.consensus_key", "expected 64 hex digits")
        peers.append(Peer(peer_id, peer_host, peer_port, certificate))
        peer_keys[peer_id] = key
    sections = {name: _section(name, document.get(name, {}), environ) for name in _SECTIONS}
    return NodeConfig(
        chain_id=chain_id,
        home=home / "data",
        consensus_key=SigningKey(_key_seed(home, "consensus_key.json")),
        operator_key=(
            SigningKey(_key_seed(home, "operator_key.json"))
            if (home / "operator_key.json").exists()
            else None
        ),
        vrf_secret=(
            _key_seed(home, "vrf_key.json", "ecvrf") if (home / "vrf_key.json").exists() else None
        ),
        node_identity=NodeIdentity(_key_seed(home, "node_key.json")),
        app_state=app_state,
        genesis_time=genesis_time,
        slack_ppm=slack_ppm,
        host=host,
        port=port,
        peers=peers,
        peer_keys=peer_keys,
        batch=sections["batch"],
        mempool=sections["mempool"],
        transport=sections["transport"],
        limits=sections["limits"],
        consensus=sections["consensus"],
        statesync=sections["statesync"],
        storage=sections["storage"],
        metrics=served["metrics"],
        api=served["api"],
        http=served["http"],
        api_tls=api_tls,
    )


_NODE_FIELDS = (
    "listen",
    "metrics",
    "api",
    "http",
    "api_tls_cert",
    "api_tls_key",
    "api_tls_client_ca",
)


def _api_tls(home: Path, node: Mapping[str, Any]) -> ApiTls | None:
    paths: dict[str, Path] = {}
    for field in ("api_tls_cert", "api_tls_key", "api_tls_client_ca"):
        value = node.get(field)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise ConfigError(f"node.{field}", f"expected a file path, got {value!r}")
        paths[field] = home / value
    if not paths:
        return None
    for field in ("api_tls_cert", "api_tls_key"):
        if field not in paths:
            raise ConfigError(f"node.{field}", "required with any other node.api_tls_* field")
    tls = ApiTls(paths["api_tls_cert"], paths["api_tls_key"], paths.get("api_tls_client_ca"))
    try:
        tls.check()
    except ValueError as error:
        field = {"client_ca": "api_tls_client_ca", "key": "api_tls_key"}.get(
            str(error).split(":", 1)[0], "api_tls_cert"
        )
        raise ConfigError(f"node.{field}", str(error)) from None
    return tls


def _key_seed(home: Path, name: str, expected: str = "ed25519") -> bytes:
    try:
        kind, seed = load_key_file(home / name)
    except (KeyFileError, OSError) as error:
        raise ConfigError(name, str(error)) from None
    if kind != expected:
        raise ConfigError(name, f"expected an {expected} key, got {kind}")
    return seed


def write_testnet(
    output: Path,
    validators: int,
    *,
    chain_id: str = "swarmguard-testnet",
    base_port: int = 26656,
    ports: list[int] | None = None,
    metrics_ports: list[int] | None = None,
    api_ports: list[int] | None = None,
    http_ports: list[int] | None = None,
    genesis_time: int | None = None,
    staking: dict[str, int] | None = None,
    balance: int = 1_000_000_000,
    self_bond: int = 1_000_000,
    full_nodes: int = 0,
    fast_path_slack_ppm: int = 0,
) -> list[Path]:
    """Write ``validators`` home directories under ``output``: fresh keys, one genesis (each
    validator's operator account funded and bonded), full-mesh peers on 127.0.0.1 at ``ports``
    (default: consecutive from ``base_port``). ``full_nodes`` more homes follow them: peers of
    everyone, not in the genesis set (they follow the chain). ``genesis_time`` (Unix seconds)
    defaults to now. Returns the homes. Keys are written 0600 and never overwritten."""
    if not 1 <= validators <= 100 or not 0 <= full_nodes <= 100:
        raise ValueError("validators must be in 1..100, full_nodes in 0..100")
    total = validators + full_nodes
    ports = ports or [base_port + i for i in range(total)]
    if len(ports) != total:
        raise ValueError("one port per node")
    homes = [output / f"node{i}" for i in range(total)]
    consensus, nodes, operators, vrf_keys = [], [], [], []
    for home in homes:
        (home / "peers").mkdir(parents=True, exist_ok=True)
        seeds = [os.urandom(32) for _ in range(4)]
        write_key_file(home / "consensus_key.json", "ed25519", seeds[0])
        write_key_file(home / "node_key.json", "ed25519", seeds[1])
        write_key_file(home / "operator_key.json", "ed25519", seeds[2])
        write_key_file(home / "vrf_key.json", "ecvrf", seeds[3])
        consensus.append(SigningKey(seeds[0]))
        nodes.append(NodeIdentity(seeds[1]))
        operators.append(SigningKey(seeds[2]))
        vrf_keys.append(public_key_of("ecvrf", seeds[3]))
    app_state: dict[str, object] = {
        "accounts": [
            {"address": address_of(k.public_key.raw).hex(), "balance": balance}
            for k in operators[:validators]
        ],
        "validators": [
            {
                "operator": address_of(operators[i].public_key.raw).hex(),
                "consensus_key": consensus[i].public_key.raw.hex(),
                "vrf_key": vrf_keys[i].hex(),
                "self_bond": self_bond,
            }
            for i in range(validators)
        ],
    }
    if staking:
        app_state["staking"] = dict(staking)
    genesis = {
        "chain_id": chain_id,
        "genesis_time": int(time.time()) if genesis_time is None else genesis_time,
        "consensus_params": {"fast_path_slack_ppm": fast_path_slack_ppm},
        "app_state": app_state,
    }
    for i, home in enumerate(homes):
        (home / "genesis.json").write_text(json.dumps(genesis, indent=2) + "\n")
        lines = [
            "[node]",
            f'listen = "127.0.0.1:{ports[i]}"',
            f'metrics = "127.0.0.1:{metrics_ports[i]}"' if metrics_ports else 'metrics = "off"',
            f'api = "127.0.0.1:{api_ports[i]}"' if api_ports else 'api = "off"',
            f'http = "127.0.0.1:{http_ports[i]}"' if http_ports else 'http = "off"',
            "",
        ]
        for j in range(total):
            if j == i:
                continue
            (home / "peers" / f"{j}.pem").write_bytes(nodes[j].certificate_pem())
            lines += [
                "[[peers]]",
                f"id = {j}",
                f'address = "127.0.0.1:{ports[j]}"',
                f'consensus_key = "{consensus[j].public_key.raw.hex()}"',
                f'certificate = "peers/{j}.pem"',
                "",
            ]
        (home / "config.toml").write_text("\n".join(lines))
    return homes
