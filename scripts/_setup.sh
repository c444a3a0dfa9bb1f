# Sourced by the scripts in this folder: makes a fresh machine ready, idempotently.
# - .venv with the exact pinned dependencies (requirements/dev.txt) and swarmguard installed editable;
# - redis-server (Debian package) for the tests that share state through Redis, when we are root.
set -euo pipefail
root_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root_dir"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=".venv/.requirements-$(sha256sum requirements/dev.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  touch "$stamp"
fi
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing redis-server (apt-get)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null
  else
    echo "note: redis-server is not installed and we are not root; Redis tests will skip" >&2
  fi
fi
export PATH="$root_dir/.venv/bin:$PATH"
