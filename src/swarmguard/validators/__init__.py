"""The validator manager: staking, slashing, reputation and VRF leader selection.

A deterministic library with no I/O: every node applying the same transactions reaches the same
state and the same state hash. Guide: docs/validators.md.
"""
