#!/usr/bin/env bash
# A virtualenv with the pinned official Databricks Python SDK; prints its python's path.
#
#   python="$(bash hack/sdk-venv.sh)"
#
# Created once under ${XDG_CACHE_HOME:-$HOME/.cache}/databricks-account-operator/sdk-venv (pip
# from PyPI) and re-created when the pinned version changes. Progress goes to stderr, so that
# stdout is only the path. Used by hack/sdk-test.sh and tests/export.rs.
set -euo pipefail

SDK_VERSION="0.162.0"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/databricks-account-operator"
VENV="$CACHE/sdk-venv"

# One creator at a time: cargo runs test binaries one after another, but a person may run the
# SDK test and the export test at once.
mkdir -p "$CACHE"
exec 9>"$CACHE/sdk-venv.lock"
flock 9
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import databricks.sdk.version as v, sys; sys.exit(v.__version__ != '$SDK_VERSION')" 2>/dev/null; then
    echo "==> creating $VENV with databricks-sdk==$SDK_VERSION" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "databricks-sdk==$SDK_VERSION" >&2
fi
echo "$VENV/bin/python"
