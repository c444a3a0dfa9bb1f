#!/usr/bin/env bash
# Set up a fresh machine and run the main job: a local network of four validator processes
# (loopback, LMDB, no external service) under a light load of signed transfers from a separate
# client, with a live view; Ctrl-C stops it. Arguments go to `swarmguard up`
# (e.g. --validators 7, --load 1000, --duration 60, --home DIR to keep the network).
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
swarmguard up --load 200 "$@"
