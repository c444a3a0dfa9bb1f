"""The node's client APIs: gRPC (node.proto) and the same calls over HTTP/JSON."""
