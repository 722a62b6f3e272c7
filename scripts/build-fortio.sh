#!/usr/bin/env bash
# Builds the benchmark's load tools once and caches them.
#   fortio   - from its Go module, pinned, into ~/.cache/ambit/bin (fixed-rate latency)
#   wrk      - Debian package (HTTP/1.1 saturation)
#   h2load   - Debian nghttp2-client (HTTP/2 multiplexing, gRPC-shaped load)
#   haproxy  - Debian package (the reference mTLS tunnel pair and HTTP-mode peer)
#   iperf3   - Debian package (bulk TCP throughput)
# A second run finds everything in place and returns at once.
# Prints the fortio binary path on its last line.
set -euo pipefail

# v1.68.2 is the newest fortio whose module graph avoids grol.io/grol, which
# the Go module proxy reachable here does not serve (v1.69+ need it for `fortio script`).
FORTIO_VERSION="v1.68.2"
CACHE="${AMBIT_CACHE:-$HOME/.cache/ambit}"
BIN="$CACHE/bin"
FORTIO="$BIN/fortio"
STAMP="$BIN/.fortio-$FORTIO_VERSION"

# Debian packages, only when missing.
declare -A want=(
  [wrk]=wrk
  [h2load]=nghttp2-client
  [haproxy]=haproxy
  [iperf3]=iperf3
)
missing=()
for cmd in "${!want[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
    missing+=("${want[$cmd]}")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "build-fortio.sh: missing ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "build-fortio.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's haproxy and iperf3 packages may start system services; the bench
  # runs its own processes, so stop them (ignore machines without systemd).
  systemctl stop haproxy iperf3 >/dev/null 2>&1 || true
fi

if [ -x "$FORTIO" ] && [ -e "$STAMP" ]; then
  echo "$FORTIO"
  exit 0
fi

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || { echo "build-fortio.sh: go toolchain not found" >&2; exit 1; }

mkdir -p "$BIN" "$CACHE/go" "$CACHE/go-build"
echo "build-fortio.sh: building fortio $FORTIO_VERSION (cached in $CACHE)" >&2
export GOBIN="$BIN" GOPATH="$CACHE/go" GOCACHE="$CACHE/go-build" GOFLAGS="-trimpath" CGO_ENABLED=0
nice -n 10 go install -ldflags="-s -w" "fortio.org/fortio@$FORTIO_VERSION"
rm -f "$BIN"/.fortio-*
touch "$STAMP"
echo "$FORTIO"
