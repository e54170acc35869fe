#!/usr/bin/env bash
# Run the Python binding and service benchmarks and write docs/benchmarks-python.md.
#   bindings/python/bench/run.sh [run_bench.py options, e.g. --duration 5 --repeats 1]
# Needs wrk (apt-get install wrk). Loopback only; about 3-4 minutes with the defaults.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
"$HERE/../setup_venv.sh" "$VENV" >&2
exec "$VENV/bin/python" "$HERE/run_bench.py" "$@"
