#!/usr/bin/env bash
# Set up a fresh machine and run the resilience demo (five scenarios); the main job is scripts/up.sh.
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
swarmguard demo resilience "$@"
