#!/usr/bin/env bash
# Regenerate the gRPC code from proto/ (commit the result; CI checks it is current).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m grpc_tools.protoc -Iproto --python_out=src --grpc_python_out=src \
    --pyi_out=src proto/swarmguard/api/v1/node.proto
