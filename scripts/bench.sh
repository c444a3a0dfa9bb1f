#!/usr/bin/env bash
# Set up a fresh machine and run the resilience benchmark against the peer libraries.
# Writes its table to stdout; docs/benchmarks.md keeps the latest run.
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
python bench/resilience_bench.py "$@"
