#!/usr/bin/env bash
# Builds livekit-server from the Go module proxy (no git clone, no prebuilt download) and caches
# the binary under .cache/livekit/ (gitignored). A second run only prints the cached path.
#
#   scripts/livekit-server.sh            -> prints the absolute path of the binary on stdout
#   LIVEKIT_VERSION=v1.13.5 (default)    -> the module version to build
#   LIVEKIT_CACHE_DIR=DIR                -> cache folder (default: <repo>/.cache/livekit)
#   LIVEKIT_SERVER_BIN=PATH              -> use this binary instead (checked, not built)
#
# Everything except the final path goes to stderr. Needs only Go (>= the version the module asks).
# Newer livekit-server versions need module versions the proxy here refuses: keep v1.13.5.
set -euo pipefail

VERSION="${LIVEKIT_VERSION:-v1.13.5}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${LIVEKIT_CACHE_DIR:-$ROOT/.cache/livekit}"
BIN="$CACHE/livekit-server-$VERSION"
LINK="$CACHE/livekit-server"

if [[ -n "${LIVEKIT_SERVER_BIN:-}" ]]; then
  if [[ -x "$LIVEKIT_SERVER_BIN" ]]; then echo "$LIVEKIT_SERVER_BIN"; exit 0; fi
  echo "livekit-server.sh: LIVEKIT_SERVER_BIN=$LIVEKIT_SERVER_BIN is not an executable file" >&2
  exit 1
fi

if [[ -x "$BIN" ]] && "$BIN" --version >/dev/null 2>&1; then
  ln -sfn "$(basename "$BIN")" "$LINK"
  echo "$BIN"
  exit 0
fi

GO="$(command -v go || true)"
[[ -z "$GO" && -x /usr/local/go/bin/go ]] && GO=/usr/local/go/bin/go
if [[ -z "$GO" ]]; then
  echo "livekit-server.sh: go not found (PATH or /usr/local/go/bin)" >&2
  exit 1
fi

mkdir -p "$CACHE"
# One build at a time (two vitest workers, or a test and a CLI demo, may both ask).
exec 9>"$CACHE/.build.lock"
if command -v flock >/dev/null; then flock 9; fi
if [[ -x "$BIN" ]] && "$BIN" --version >/dev/null 2>&1; then
  ln -sfn "$(basename "$BIN")" "$LINK"
  echo "$BIN"
  exit 0
fi

echo "livekit-server.sh: building livekit-server $VERSION with $("$GO" version) (a few minutes)" >&2
t0=$SECONDS
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=mod -buildvcs=false"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
json="$("$GO" mod download -json "github.com/livekit/livekit-server@$VERSION")"
dir="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -n1)"
if [[ -z "$dir" || ! -d "$dir" ]]; then
  echo "livekit-server.sh: go mod download gave no module directory:" >&2
  printf '%s\n' "$json" >&2
  exit 1
fi

src="$CACHE/src-$VERSION"
rm -rf "$src"
cp -r "$dir" "$src"          # the module cache is read-only
chmod -R u+w "$src"
(
  cd "$src"
  "$GO" build -trimpath -o "$BIN.tmp" ./cmd/server 1>&2
)
mv -f "$BIN.tmp" "$BIN"
rm -rf "$src"
ln -sfn "$(basename "$BIN")" "$LINK"
echo "livekit-server.sh: built $BIN in $((SECONDS - t0)) s ($("$BIN" --version 2>&1 | head -n1))" >&2
echo "$BIN"
