#!/usr/bin/env bash
# Create (or refresh) the Python virtualenv with the sako package installed editable,
# with the service and dev extras. Idempotent: does nothing when the Python sources,
# the C sources and the requirements are unchanged since the last successful run.
#
#   bindings/python/setup_venv.sh [VENV_DIR]     (default: <repo>/.venv)
#
# Needs python3 (>= 3.9) with venv, a C compiler, pkg-config and libsqlite3-dev (the
# apt packages are installed by the repository's own setup script). SWIG comes from
# PyPI as a build requirement, so the apt swig is not needed here.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${1:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

hash_inputs() {
    (
        cd "$ROOT"
        # everything the build and the installed package depend on
        find include libsako bindings/python/sako bindings/python/sako.i \
             bindings/python/setup.py bindings/python/pyproject.toml \
             bindings/python/requirements-eval-test.txt \
             -type f \( -name '*.c' -o -name '*.h' -o -name '*.i' -o -name '*.py' \
                        -o -name '*.toml' -o -name '*.typed' \) \
             -not -path '*/__pycache__/*' -print0 2>/dev/null | sort -z | xargs -0 sha256sum
        "$PYTHON" --version 2>&1
    ) | sha256sum | cut -d' ' -f1
}

STAMP="$VENV/.sako-stamp"
WANT="$(hash_inputs)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/python" ] \
   && "$VENV/bin/python" -c 'import sako' >/dev/null 2>&1; then
    echo "setup_venv: $VENV is up to date"
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup_venv: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# Editable install: the extension (C core + SWIG wrapper) is built in place, the
# Python files are used from the work tree, so `import sako` always sees the repo.
"$VENV/bin/python" -m pip install --quiet -e "$HERE[service,dev]"
# What the evaluation tests (tests/test_eval_*.py) need, when that subpackage is present.
if [ -f "$HERE/requirements-eval-test.txt" ]; then
    "$VENV/bin/python" -m pip install --quiet -r "$HERE/requirements-eval-test.txt"
fi
"$VENV/bin/python" -c 'import sako, sys; print("setup_venv: sako", sako.__version__, "in", sys.prefix)'
echo "$WANT" > "$STAMP"
