"""The deterministic simulator: whole validator networks in one process, attacking the real
consensus core with Byzantine validators, partitions, loss and crashes (docs/consensus.md)."""

from swarmguard.sim.scenario import Behaviour, Crash, Epoch, Scenario
from swarmguard.sim.simulation import Result, Simulation

__all__ = ["Behaviour", "Crash", "Epoch", "Result", "Scenario", "Simulation"]
