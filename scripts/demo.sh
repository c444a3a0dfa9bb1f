#!/usr/bin/env bash
# Set up a fresh machine and run the main job: today, the resilience demo (five scenarios).
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
swarmguard demo resilience "$@"
