"""Code generated from proto/swarmguard/api/v1/node.proto by scripts/gen_proto.sh."""
