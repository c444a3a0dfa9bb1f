"""The validator node: transport, mempool, application interface, the node loop."""
