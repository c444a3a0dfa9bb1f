"""Blockchain storage: Merkle trees and proofs (RFC 9162); block store and snapshots to come.

Guide: docs/storage.md.
"""
