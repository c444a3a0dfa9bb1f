"""The fast-path slack as a chain parameter: millionths of a set's power, rounded down, and the
thresholds it gives (less fault tolerance for a fast path that waits for fewer votes)."""

from __future__ import annotations

import pytest

from swarmguard.consensus.tally import Thresholds
from swarmguard.validators.sets import SLACK_PPM_LIMIT, fast_path_slack

SEVEN = [(bytes([i]) * 32, 100_000) for i in range(7)]


def test_one_of_seven() -> None:
    assert fast_path_slack(SEVEN, 0) == 0
    assert fast_path_slack(SEVEN, 142_857) == 99_999  # just short of one validator
    slack = fast_path_slack(SEVEN, 142_858)
    assert slack == 100_000
    plain = Thresholds.for_powers([100_000] * 7)
    slacked = Thresholds.for_powers([100_000] * 7, slack)
    assert (plain.faults, slacked.faults) == (233_333, 166_666)  # two validators, then one
    assert plain.fast_commit == 700_000  # every vote
    assert slacked.fast_commit == 600_000  # six of seven


def test_the_limit() -> None:
    Thresholds.for_powers([1, 1, 1], fast_path_slack([(b"k" * 32, 3)], SLACK_PPM_LIMIT - 1))
    for ppm in (-1, SLACK_PPM_LIMIT):
        with pytest.raises(ValueError, match="fast-path slack"):
            fast_path_slack(SEVEN, ppm)
