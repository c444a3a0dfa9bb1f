#!/usr/bin/env bash
# Set up a fresh machine and run every check: ruff, mypy --strict, then the test suite.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -m slow` for the long soaks).
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
ruff check src tests bench
ruff format --check src tests bench
mypy
pytest --durations=25 "$@"  # the slowest tests, so the suite's time stays visible
