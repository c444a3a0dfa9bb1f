"""The same calls over HTTP/JSON, with an OpenAPI 3.1 document generated from the proto.

Every unary gRPC method is ``POST /v1/<Method>`` with the request message as JSON in the body and
the response message as JSON in the answer, in protobuf's canonical JSON mapping (bytes as
base64, 64-bit integers as strings, field names in lowerCamelCase): the Twirp convention, so any
HTTP client or OpenAPI tool works (``curl -d '{}' localhost:8080/v1/GetStatus``). The two
streaming methods stay gRPC-only. ``GET /openapi.json`` serves the document, built from the
messages' descriptors, so it cannot drift from the proto.

Errors: the gRPC status becomes the HTTP status (INVALID_ARGUMENT 400, NOT_FOUND 404,
RESOURCE_EXHAUSTED 429, DEADLINE_EXCEEDED 504, anything else 500) with a JSON body
``{"code": "<STATUS>", "message": "..."}``; a body that is not JSON of the request message is
400. Each connection is served by its own thread, which hands the call to the node's event loop
and waits for it, so the node's state is only ever touched from its loop, and a client waiting for
a commit (up to five minutes) holds up nobody else. Named limits keep clients from holding the
server (``node.wsgi``): at most ``CONNECTIONS_MAX`` connections are served at once (one more gets
503 UNAVAILABLE at once rather than a queue), a connection that sends nothing for
``IDLE_SECONDS`` while its request is read is closed (a request whose body stalls gets 408), and
bodies are capped at ``BODY_BYTES_MAX``.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable, Iterable
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from swarmguard.api.grpc_server import Service
from swarmguard.api.v1 import node_pb2
from swarmguard.node.wsgi import CONNECTIONS_MAX, IDLE_SECONDS, ThreadedWsgi

__all__ = ["BODY_BYTES_MAX", "HttpServer", "openapi_document"]

BODY_BYTES_MAX = 1024 * 1024
CALL_SECONDS_MAX = 330.0  # above the longest wait a submit may ask for

_UNARY = {
    "SubmitTransaction": ("SubmitTransactionRequest", "SubmitTransactionResponse"),
    "SubmitBatch": ("SubmitBatchRequest", "SubmitBatchResponse"),
    "GetTransaction": ("GetTransactionRequest", "GetTransactionResponse"),
    "GetBlock": ("GetBlockRequest", "Block"),
    "Query": ("QueryRequest", "QueryResponse"),
    "GetStatus": ("GetStatusRequest", "Status"),
    "GetValidators": ("GetValidatorsRequest", "Validators"),
}
_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: "400 Bad Request",
    grpc.StatusCode.NOT_FOUND: "404 Not Found",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "429 Too Many Requests",
    grpc.StatusCode.DEADLINE_EXCEEDED: "504 Gateway Timeout",
}


class _Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class _Context:
    """What the gRPC service needs of a context, for calls arriving over HTTP."""

    def __init__(self, peer: str) -> None:
        self._peer = peer

    def peer(self) -> str:
        return self._peer

    async def abort(self, code: grpc.StatusCode, message: str) -> None:
        raise _Aborted(code, message)


_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_BYTES: {
        "type": "string",
        "contentEncoding": "base64",
        "pattern": "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
    },
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "pattern": "^[0-9]{1,20}$"},
}


def _schema(descriptor: Descriptor) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            assert field.message_type is not None
            item: dict[str, Any] = {"$ref": f"#/components/schemas/{field.message_type.name}"}
        else:
            item = dict(_SCALARS[field.type])
        if field.type == FieldDescriptor.TYPE_UINT64:  # the JSON mapping also accepts numbers
            item = {"oneOf": [item, {"type": "integer", "minimum": 0, "maximum": 2**64 - 1}]}
        if field.is_repeated:
            item = {"type": "array", "items": item}
        properties[field.json_name] = item
    return {"type": "object", "properties": properties, "additionalProperties": False}


_HASH = {"type": "string", "pattern": "^[A-Za-z0-9+/]{43}=$", "description": "32 bytes, base64"}
_HEIGHT = {
    "oneOf": [
        {"type": "string", "pattern": "^[1-9][0-9]{0,18}$"},
        {"type": "integer", "minimum": 1, "maximum": 10**19 - 1},
    ]
}
_REFINED: dict[str, dict[str, Any]] = {
    # What the proto cannot say: required fields and ranges the server checks.
    "GetTransactionRequest": {"required": ["hash"], "properties": {"hash": _HASH}},
    "GetBlockRequest": {
        "oneOf": [
            {"required": ["height"], "properties": {"height": _HEIGHT, "hash": False}},
            {"required": ["hash"], "properties": {"hash": _HASH, "height": False}},
        ]
    },
    "SubmitTransactionRequest": {
        "properties": {"timeoutSeconds": {"type": "number", "minimum": 0, "maximum": 300}}
    },
}


def _refine(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    refinement = _REFINED.get(name)
    if refinement is None:
        return schema
    refined = dict(schema)
    properties = dict(schema["properties"])
    properties.update(refinement.get("properties", {}))
    refined["properties"] = properties
    for key in ("required", "oneOf"):
        if key in refinement:
            refined[key] = refinement[key]
    return refined


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 for the HTTP/JSON calls, from the proto's descriptors."""
    messages = node_pb2.DESCRIPTOR.message_types_by_name
    error = {
        "type": "object",
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        "required": ["code", "message"],
    }
    schemas: dict[str, Any] = {name: _refine(name, _schema(messages[name])) for name in messages}
    schemas["Error"] = error
    paths: dict[str, Any] = {}
    for method, (request, response) in _UNARY.items():
        error_answer = {
            "description": "the gRPC status and why",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        paths[f"/v1/{method}"] = {
            "post": {
                "operationId": method,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{request}"}}
                    },
                },
                "responses": {
                    "200": {
                        "description": response,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": f"#/components/schemas/{response}"}
                            }
                        },
                    },
                    **{status[:3]: error_answer for status in _HTTP.values()},
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "SwarmGuard node", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


_BUSY = json.dumps({"code": "UNAVAILABLE", "message": "too many connections"}).encode()


class HttpServer:
    """HTTP/JSON for one node's gRPC service, in a daemon thread."""

    def __init__(
        self,
        service: Service,
        loop: asyncio.AbstractEventLoop,
        *,
        connections_max: int = CONNECTIONS_MAX,
        idle_seconds: float = IDLE_SECONDS,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.service, self.loop = service, loop
        self._document = json.dumps(openapi_document()).encode()
        self._server = ThreadedWsgi(
            "http-api",
            self._app,
            connections_max=connections_max,
            idle_seconds=idle_seconds,
            busy=(_BUSY, "application/json"),
            tls=tls,
        )
        self.bulkhead, self.idle_seconds = self._server.bulkhead, idle_seconds

    def serve(self, host: str, port: int) -> int:
        return self._server.serve(host, port)

    def close(self) -> None:
        self._server.close()

    def reload_tls(self, context: ssl.SSLContext) -> None:
        """New connections use ``context`` (a renewed certificate); raises ``ValueError`` on
        a server started without TLS."""
        self._server.reload_tls(context)

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/openapi.json" and method == "GET":
            return _answer(start_response, "200 OK", self._document)
        name = path.removeprefix("/v1/")
        if not path.startswith("/v1/") or name not in _UNARY:
            return _error(start_response, "404 Not Found", "NOT_FOUND", f"no route {path}")
        if method != "POST":
            return _error(start_response, "405 Method Not Allowed", "UNIMPLEMENTED", "use POST")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= BODY_BYTES_MAX:
            return _error(start_response, "400 Bad Request", "INVALID_ARGUMENT", "bad length")
        try:
            body = environ["wsgi.input"].read(length) if length else b"{}"
        except OSError:  # TimeoutError included: the client stopped sending its body
            silent = f"the request body stopped arriving ({self.idle_seconds:g} s of silence)"
            return _error(start_response, "408 Request Timeout", "DEADLINE_EXCEEDED", silent)
        if len(body) != (length or 2):
            return _error(start_response, "400 Bad Request", "INVALID_ARGUMENT", "short body")
        request = getattr(node_pb2, _UNARY[name][0])()
        try:
            json_format.Parse(body, request)
        except (json_format.ParseError, UnicodeDecodeError, ValueError) as problem:
            return _error(start_response, "400 Bad Request", "INVALID_ARGUMENT", str(problem))
        context = _Context(f"http:{environ.get('REMOTE_ADDR', '')}")
        call = getattr(self.service, name)(request, context)
        try:
            response = asyncio.run_coroutine_threadsafe(call, self.loop).result(CALL_SECONDS_MAX)
        except _Aborted as aborted:
            status = _HTTP.get(aborted.code, "500 Internal Server Error")
            return _error(start_response, status, aborted.code.name, aborted.message)
        text = json_format.MessageToJson(response, indent=None).encode()
        return _answer(start_response, "200 OK", text)


def _answer(start_response: Callable[..., Any], status: str, body: bytes) -> list[bytes]:
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response(status, headers)
    return [body]


def _error(start_response: Callable[..., Any], status: str, code: str, message: str) -> list[bytes]:
    return _answer(start_response, status, json.dumps({"code": code, "message": message}).encode())
