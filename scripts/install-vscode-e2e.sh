#!/usr/bin/env bash
# Install what the VS Code extension's tests need, offline from GitHub (Debian + npm registry only):
#   - the extension's own npm dev dependencies (editors/vscode/node_modules, from package-lock.json);
#   - a real VS Code for the end-to-end test: code-server (VS Code 1.100.3 on the system's node 20),
#     driven by Debian's chromium through playwright-core, both in a cache folder.
# Idempotent: a second run checks a stamp and returns in about a second.
#   bash scripts/install-vscode-e2e.sh
# The cache folder is ${TACH_LS_E2E_CACHE:-~/.cache/tach-ls-e2e}; tests/e2e/test_vscode.py reads the same.
set -euo pipefail
cd "$(dirname "$0")/.."

CODE_SERVER_VERSION=4.100.3
PLAYWRIGHT_VERSION=1.65.1
RIPGREP_PACKAGE_VERSION=1.15.11  # @vscode/ripgrep as code-server 4.100.3's VS Code pins it
RIPGREP_ASSET=ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz
CACHE=${TACH_LS_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tach-ls-e2e}
STAMP="$CACHE/installed-$CODE_SERVER_VERSION-$PLAYWRIGHT_VERSION"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "install-vscode-e2e: need root for: $* (run it as root, or install it yourself)" >&2; return 1; fi; }

if ! command -v node >/dev/null || ! node -e 'process.exit(+process.versions.node.split(".")[0] === 20 ? 0 : 1)'; then
  echo "install-vscode-e2e: code-server $CODE_SERVER_VERSION needs node 20 (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# -- Debian packages: the browser, and what code-server's native modules build with -------------
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v rg >/dev/null || missing+=(ripgrep)
for pkg in libkrb5-dev build-essential; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== apt-get install ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# -- the extension's dev dependencies (typecheck, lint, unit tests, esbuild, vsce) -----------------
ext=editors/vscode
lock_sum=$(sha256sum "$ext/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$ext/node_modules/.tach-ls-lock-sha256" 2>/dev/null)" != "$lock_sum" ]; then
  echo "== npm ci ($ext)"
  (cd "$ext" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" >"$ext/node_modules/.tach-ls-lock-sha256"
fi

# -- code-server + playwright-core in the cache ------------------------------------------------------
if [ -f "$STAMP" ] && [ -x "$CACHE/node_modules/.bin/code-server" ] && [ -d "$CACHE/node_modules/playwright-core" ]; then
  echo "== VS Code e2e tools already in $CACHE"
  exit 0
fi
echo "== npm install code-server@$CODE_SERVER_VERSION playwright-core@$PLAYWRIGHT_VERSION into $CACHE (a few minutes the first time)"
mkdir -p "$CACHE"
# @vscode/ripgrep's postinstall downloads rg from GitHub: give it Debian's rg in its cache instead.
rg_cache="${TMPDIR:-/tmp}/vscode-ripgrep-cache-$RIPGREP_PACKAGE_VERSION"
mkdir -p "$rg_cache"
if [ ! -s "$rg_cache/$RIPGREP_ASSET" ]; then
  tmp=$(mktemp -d)
  cp "$(command -v rg)" "$tmp/rg"
  tar -C "$tmp" -czf "$rg_cache/$RIPGREP_ASSET" rg
  rm -rf "$tmp"
fi
cat >"$CACHE/package.json" <<EOF
{
  "name": "tach-ls-e2e-tools",
  "private": true,
  "description": "code-server and playwright-core for tach-ls's VS Code end-to-end test (made by scripts/install-vscode-e2e.sh)",
  "dependencies": {
    "code-server": "$CODE_SERVER_VERSION",
    "playwright-core": "$PLAYWRIGHT_VERSION"
  }
}
EOF
(
  cd "$CACHE"
  # code-server's postinstall runs `npx node-gyp` (needs yes) and builds native modules
  # against the local node's headers (nodedir).
  npm_config_yes=true npm_config_nodedir=/usr npm install --unsafe-perm --no-audit --no-fund --loglevel=error
)
test -x "$CACHE/node_modules/.bin/code-server"
rm -f "$CACHE"/installed-*
touch "$STAMP"
echo "== VS Code e2e tools installed in $CACHE"
