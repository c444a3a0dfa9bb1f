"""The node's start-up watchdog: a stage that does not finish in time ends the process with a
clear error (exit code 3) instead of leaving an unreachable validator running; one that
finishes leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys

STALL = """
import time
from swarmguard.cli import _exit_unless_done_within
with _exit_unless_done_within(0.3, "starting the test stage"):
    time.sleep(30)
print("not reached")
"""

FINISH = """
import threading, time
from swarmguard.cli import _exit_unless_done_within
with _exit_unless_done_within(0.3, "starting the test stage"):
    pass
time.sleep(0.6)
print("still here", threading.active_count())
"""


def test_a_stalled_stage_exits_with_code_3_and_names_it() -> None:
    done = subprocess.run(
        [sys.executable, "-c", STALL], capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == 3
    assert "starting the test stage did not finish in 0.3 s" in done.stderr
    assert "not reached" not in done.stdout


def test_a_finished_stage_leaves_the_process_running_and_no_thread() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FINISH], capture_output=True, text=True, timeout=20, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "still here 1"
