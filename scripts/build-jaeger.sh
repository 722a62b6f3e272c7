#!/usr/bin/env bash
# Builds Jaeger (v2 all-in-one: OTLP receiver, in-memory storage, query API
# and UI) once from its Go module, for `ambit up --observability` and the
# test/netns observability test, into ~/.cache/ambit/bin/jaeger.
# Cached: a second run only checks and prints the path.
#
# Why a wrapper module: `go install module@version` refuses modules whose
# go.mod has replace directives, which Jaeger's has; a module that requires
# it as a tool (go get -tool) resolves and builds the same package.
#
# Prints the binary's path on its last line (stdout); progress on stderr.
#
# Environment:
#   AMBIT_JAEGER_VERSION  (default v1.76.0: the version the Go module proxy here serves)
#   AMBIT_CACHE           (default ~/.cache/ambit)
#   AMBIT_BUILD_PROCS     GOMAXPROCS for the build (default 2)
set -euo pipefail

JVER="${AMBIT_JAEGER_VERSION:-v1.76.0}"
CACHE="${AMBIT_CACHE:-$HOME/.cache/ambit}"
PROCS="${AMBIT_BUILD_PROCS:-2}"
BIN="$CACHE/bin"
OUT="$BIN/jaeger"
STAMP="$BIN/.jaeger-$JVER"
SRC="$CACHE/jaeger-$JVER/src"
PKG=github.com/jaegertracing/jaeger/cmd/jaeger

log() { echo "build-jaeger: $*" >&2; }

if [ -x "$OUT" ] && [ -e "$STAMP" ]; then
  log "cached: $OUT ($JVER)"
  echo "$OUT"
  exit 0
fi

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || { log "the go toolchain is required"; exit 1; }

# The same module and build caches as test/k8s/build-kube.sh: shared
# dependencies (grpc, protobuf, otel) are downloaded and compiled once.
export GOPATH="$CACHE/go"
export GOCACHE="$CACHE/go/cache"
export GOMODCACHE="$CACHE/go/mod"
export GOFLAGS="-buildvcs=false -mod=mod"
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
export CGO_ENABLED=0
mkdir -p "$BIN" "$SRC" "$GOCACHE" "$GOMODCACHE"

start=$(date +%s)
if [ ! -f "$SRC/go.mod" ] || ! grep -q "jaegertracing/jaeger $JVER" "$SRC/go.mod"; then
  log "resolving $PKG@$JVER (first run only; a few minutes)"
  rm -f "$SRC/go.mod" "$SRC/go.sum"
  printf 'module ambit.dev/jaeger-build\n\ngo 1.25\n' >"$SRC/go.mod"
  (cd "$SRC" && go get -tool "$PKG@$JVER")
  log "resolved in $(( $(date +%s) - start ))s"
fi

log "building jaeger $JVER (GOMAXPROCS=$PROCS, nice 19)"
bstart=$(date +%s)
(cd "$SRC" && GOMAXPROCS="$PROCS" nice -n 19 go build -p "$PROCS" -trimpath -ldflags "-s -w" \
  -o "$OUT.tmp" "$PKG")
mv "$OUT.tmp" "$OUT"
rm -f "$BIN"/.jaeger-*
touch "$STAMP"
log "built in $(( $(date +%s) - bstart ))s (total $(( $(date +%s) - start ))s): $OUT"
echo "$OUT"
