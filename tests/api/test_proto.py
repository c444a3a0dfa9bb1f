"""The generated gRPC code is what proto/ says (regenerate with scripts/gen_proto.sh)."""

from __future__ import annotations

from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).parents[2]


def test_generated_code_is_current(tmp_path: Path) -> None:
    proto = "swarmguard/api/v1/node.proto"
    status = protoc.main(
        [
            "protoc",
            f"-I{ROOT / 'proto'}",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            str(ROOT / "proto" / proto),
        ]
    )
    assert status == 0
    for name in ("node_pb2.py", "node_pb2.pyi", "node_pb2_grpc.py"):
        generated = (tmp_path / "swarmguard/api/v1" / name).read_text()
        committed = (ROOT / "src/swarmguard/api/v1" / name).read_text()
        assert generated == committed, f"{name} is stale: run bash scripts/gen_proto.sh"
