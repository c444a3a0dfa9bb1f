"""Runnable demonstrations of SwarmGuard's capabilities (used by ``swarmguard demo``)."""
