"""``swarmguard status``, ``query`` and ``tx``: small gRPC clients of a node's API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from swarmguard.api.v1 import node_pb2, node_pb2_grpc
from swarmguard.crypto import KeyFileError, SigningKey, load_key_file
from swarmguard.crypto.hashing import ADDRESS_BYTES, address_of
from swarmguard.crypto.keys import public_key_of
from swarmguard.node.transactions import (
    Body,
    CreateValidator,
    Delegate,
    Redelegate,
    Transaction,
    Transfer,
    Undelegate,
    Unjail,
)

__all__ = ["run_client"]


def _print(message: object) -> None:
    """The message as JSON, byte fields in hex (how keys and hashes are written everywhere
    else here, e.g. a config's ``trust_hash``) rather than protobuf JSON's base64."""
    document = json_format.MessageToDict(message)  # type: ignore[arg-type]
    for field in message.DESCRIPTOR.fields:  # type: ignore[attr-defined]
        if field.type == field.TYPE_BYTES and field.json_name in document:
            document[field.json_name] = getattr(message, field.name).hex()
    print(json.dumps(document, indent=2))


def _channel(args: argparse.Namespace) -> grpc.Channel:
    """Plaintext, or TLS when ``--tls-ca`` is given (plus a client certificate for a node that
    requires one)."""
    if args.tls_ca is None:
        if args.tls_cert is not None or args.tls_key is not None:
            raise ValueError("--tls-cert and --tls-key need --tls-ca")
        return grpc.insecure_channel(args.node)
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    try:
        root = Path(args.tls_ca).read_bytes()
        chain = None if args.tls_cert is None else Path(args.tls_cert).read_bytes()
        key = None if args.tls_key is None else Path(args.tls_key).read_bytes()
    except OSError as error:
        raise ValueError(str(error)) from None
    credentials = grpc.ssl_channel_credentials(root, key, chain)
    return grpc.secure_channel(args.node, credentials)


def run_client(args: argparse.Namespace) -> int:
    try:
        with _channel(args) as channel:
            stub = node_pb2_grpc.NodeStub(channel)  # type: ignore[no-untyped-call]
            if args.command == "status":
                _print(stub.GetStatus(node_pb2.GetStatusRequest(), timeout=10))
                return 0
            if args.command == "query":
                return _query(args, stub)
            return _submit(args, stub, _body(args))
    except grpc.RpcError as error:
        print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    except (ValueError, KeyFileError) as error:  # a CodecError too: a value out of range
        print(f"error: {error}", file=sys.stderr)
        return 2


def _query(args: argparse.Namespace, stub: Any) -> int:
    if args.what == "validators":
        _print(stub.GetValidators(node_pb2.GetValidatorsRequest(), timeout=10))
        return 0
    if args.address is None:
        raise ValueError("query account needs the account's address")
    answer = stub.Query(
        node_pb2.QueryRequest(path="account", data=_address(args.address)), timeout=10
    )
    if answer.code:
        print(f"error: {answer.log} (code {answer.code})", file=sys.stderr)
        return 1
    balance = int.from_bytes(answer.value[:8], "big")
    nonce = int.from_bytes(answer.value[8:16], "big")
    print(json.dumps({"balance": balance, "nonce": nonce, "height": answer.height}))
    return 0


def _address(text: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"an address is 40 hex digits, got {text!r}") from None
    if len(value) != ADDRESS_BYTES:
        raise ValueError(f"an address is 40 hex digits, got {text!r}")
    return value


def _key(path: str, kind: str) -> bytes:
    """The seed of a key file of ``kind``."""
    found, seed = load_key_file(path)
    if found != kind:
        raise ValueError(f"{path}: expected an {kind} key file, got {found}")
    return seed


def _body(args: argparse.Namespace) -> Body:
    """The transaction body ``swarmguard tx <kind>`` asks for (the codec checks ranges)."""
    kind = args.kind
    if kind == "transfer":
        return Transfer(_address(args.to), args.amount)
    if kind == "delegate":
        return Delegate(_address(args.validator), args.amount)
    if kind == "unbond":
        return Undelegate(_address(args.validator), args.amount)
    if kind == "redelegate":
        return Redelegate(_address(args.source), _address(args.destination), args.amount)
    if kind == "unjail":
        return Unjail()
    return CreateValidator(
        SigningKey(_key(args.consensus_key, "ed25519")).public_key.raw,
        public_key_of("ecvrf", _key(args.vrf_key, "ecvrf")),
        args.commission_ppm,
        args.self_bond,
    )


def _submit(args: argparse.Namespace, stub: Any, body: Body) -> int:
    key = SigningKey(_key(args.key, "ed25519"))
    status = stub.GetStatus(node_pb2.GetStatusRequest(), timeout=10)
    sender = address_of(key.public_key.raw)
    account = stub.Query(node_pb2.QueryRequest(path="account", data=sender), timeout=10)
    nonce = int.from_bytes(account.value[8:16], "big") if account.code == 0 else 0
    transaction = Transaction.sign(key, status.chain_id, nonce, body).encode()
    request = node_pb2.SubmitTransactionRequest(transaction=transaction, wait_for_commit=args.wait)
    answer = stub.SubmitTransaction(request, timeout=60)
    _print(answer)
    return 0 if answer.admission in ("accepted", "duplicate") and answer.code == 0 else 1
