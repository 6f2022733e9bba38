#!/usr/bin/env bash
# Install tach-ls and everything its tests need, on a fresh Debian machine or a developer's.
#   bash scripts/install.sh          tach-ls itself (editable), with its runtime dependencies
#   bash scripts/install.sh --test   also the test tools, and pytest for the other project interpreters
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
with_test=0
[ "${1:-}" = "--test" ] && with_test=1

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "tach-ls install: need root for: $* (run it as root, or install it yourself)" >&2; return 1; fi; }

# python-prctl builds against libcap's headers.
if [ ! -e /usr/include/sys/capability.h ]; then
  echo "== installing libcap-dev (needed to build python-prctl)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libcap-dev >/dev/null
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ "$with_test" = 1 ]; then
  echo "== pip install -e .[test]"
  "$PY" -m pip install -q -e ".[test]"
  # Engine tests run the project side under 3.11 and 3.12 (sys.monitoring differs), and
  # a smoke test under 3.10 and 3.13 (coverage.py's C tracer, sys.monitoring):
  # each project interpreter needs pytest (+ plugins the fixture projects use), and
  # debugpy for debug runs (the test extra installs it for $PY, the server's own).
  # The editor tests: a real headless VS Code (code-server + Debian's chromium); Neovim comes from pip.
  bash scripts/install-vscode-e2e.sh
  # pyenv's shims refuse `python3.12` unless 3.12 is the selected version: use the real binaries.
  for other in python3.12 python3.11 python3.13 python3.10; do
    real=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"${other#python}"*/bin/"$other" 2>/dev/null | tail -n 1)
    [ -n "$real" ] || real=$(command -v "$other" || true)
    if [ -n "$real" ] && "$real" --version >/dev/null 2>&1; then
      "$real" -m pip install -q pytest pytest-asyncio coverage debugpy
    else
      echo "== warning: $other not found; the engine tests for it will fail with a fix-it message" >&2
    fi
  done
else
  echo "== pip install -e ."
  "$PY" -m pip install -q -e .
fi
command -v pyenv >/dev/null && pyenv rehash 2>/dev/null || true
echo "== tach-ls installed: $(command -v tach-ls || echo "$PY -m tach_ls.cli")"
