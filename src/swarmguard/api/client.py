"""``swarmguard status``, ``query`` and ``tx``: small gRPC clients of a node's API."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import grpc
from google.protobuf import json_format

from swarmguard.api.v1 import node_pb2, node_pb2_grpc
from swarmguard.crypto import KeyFileError, SigningKey, load_key_file
from swarmguard.crypto.hashing import address_of
from swarmguard.node.transactions import Transaction, Transfer

__all__ = ["run_client"]


def _print(message: object) -> None:
    """The message as JSON, byte fields in hex (how keys and hashes are written everywhere
    else here, e.g. a config's ``trust_hash``) rather than protobuf JSON's base64."""
    document = json_format.MessageToDict(message)  # type: ignore[arg-type]
    for field in message.DESCRIPTOR.fields:  # type: ignore[attr-defined]
        if field.type == field.TYPE_BYTES and field.json_name in document:
            document[field.json_name] = getattr(message, field.name).hex()
    print(json.dumps(document, indent=2))


def run_client(args: argparse.Namespace) -> int:
    try:
        with grpc.insecure_channel(args.node) as channel:
            stub = node_pb2_grpc.NodeStub(channel)  # type: ignore[no-untyped-call]
            if args.command == "status":
                _print(stub.GetStatus(node_pb2.GetStatusRequest(), timeout=10))
                return 0
            if args.command == "query":
                answer = stub.Query(
                    node_pb2.QueryRequest(path=args.what, data=bytes.fromhex(args.address)),
                    timeout=10,
                )
                if answer.code:
                    print(f"error: {answer.log} (code {answer.code})", file=sys.stderr)
                    return 1
                balance = int.from_bytes(answer.value[:8], "big")
                nonce = int.from_bytes(answer.value[8:16], "big")
                print(json.dumps({"balance": balance, "nonce": nonce, "height": answer.height}))
                return 0
            return _transfer(args, stub)
    except grpc.RpcError as error:
        print(f"error: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    except (ValueError, KeyFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _transfer(args: argparse.Namespace, stub: Any) -> int:
    kind, seed = load_key_file(args.key)
    if kind != "ed25519":
        raise ValueError("the sender's key must be an ed25519 key file")
    key = SigningKey(seed)
    status = stub.GetStatus(node_pb2.GetStatusRequest(), timeout=10)
    sender = address_of(key.public_key.raw)
    account = stub.Query(node_pb2.QueryRequest(path="account", data=sender), timeout=10)
    nonce = int.from_bytes(account.value[8:16], "big") if account.code == 0 else 0
    body = Transfer(bytes.fromhex(args.to), args.amount)
    transaction = Transaction.sign(key, status.chain_id, nonce, body).encode()
    request = node_pb2.SubmitTransactionRequest(transaction=transaction, wait_for_commit=args.wait)
    answer = stub.SubmitTransaction(request, timeout=60)
    _print(answer)
    return 0 if answer.admission in ("accepted", "duplicate") and answer.code == 0 else 1
