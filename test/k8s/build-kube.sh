#!/usr/bin/env bash
# Builds the Kubernetes control plane the test/k8s tier runs against, from the
# official Go modules through the Go module proxy:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
# into ~/.cache/ambit/k8s-<version>/bin, plus etcd (Debian's etcd-server,
# installed when missing). Cached: a second run only checks and exits.
#
# Why a wrapper module: k8s.io/kubernetes is not meant to be a dependency; its
# go.mod replaces the k8s.io staging modules with ./staging paths, which do not
# apply to a module that requires it. So the wrapper requires k8s.io/kubernetes
# and replaces each staging module with its published v0.X.Y version.
#
# Environment:
#   AMBIT_K8S_VERSION   (default v1.37.2)
#   AMBIT_CACHE         (default ~/.cache/ambit)
#   AMBIT_BUILD_PROCS   GOMAXPROCS for the build (default 2)
#   AMBIT_SKIP_ETCD=1   do not install etcd
set -euo pipefail

KVER="${AMBIT_K8S_VERSION:-v1.37.2}"
CACHE="${AMBIT_CACHE:-$HOME/.cache/ambit}"
PROCS="${AMBIT_BUILD_PROCS:-2}"
MINOR="${KVER#v1.}"; MINOR="${MINOR%%.*}"
STAGING="v0.${KVER#v1.}"            # v1.37.2 -> v0.37.2
OUT="$CACHE/k8s-$KVER"
BIN="$OUT/bin"
SRC="$OUT/src"
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

export GOPATH="$CACHE/go"
export GOCACHE="$CACHE/go/cache"
export GOMODCACHE="$CACHE/go/mod"
export GOFLAGS="-buildvcs=false -mod=mod"
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
export CGO_ENABLED=0

log() { echo "build-kube: $*" >&2; }

install_etcd() {
  [ "${AMBIT_SKIP_ETCD:-}" = 1 ] && return 0
  if command -v etcd >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" -ne 0 ]; then
    log "etcd missing and not root: install Debian's etcd-server" ; return 1
  fi
  log "installing etcd-server (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends: no etcd-client; policy-rc.d-less containers do not
  # start the packaged service (there is no systemd), and we never rely on it.
  apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
}

built() {
  [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$KVER" ] || return 1
  for c in "${COMPONENTS[@]}"; do [ -x "$BIN/$c" ] || return 1; done
}

install_etcd

if built; then
  log "cached: $BIN ($KVER)"
  exit 0
fi

command -v go >/dev/null 2>&1 || { log "go is required"; exit 1; }
mkdir -p "$BIN" "$SRC" "$GOCACHE" "$GOMODCACHE"

log "resolving k8s.io/kubernetes@$KVER"
# Staging modules are the replace targets ./staging/src/k8s.io/* of the
# upstream go.mod: read them from the module itself rather than a fixed list.
modfile="$(cd "$SRC" && go mod download -json "k8s.io/kubernetes@$KVER" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')"
[ -f "$modfile" ] || { log "could not download k8s.io/kubernetes@$KVER go.mod"; exit 1; }
mapfile -t staging < <(sed -n 's#^\s*\(k8s\.io/[^ ]*\) => \./staging/src/.*#\1#p' "$modfile" | sort -u)
[ "${#staging[@]}" -gt 10 ] || { log "found only ${#staging[@]} staging modules in $modfile"; exit 1; }
log "${#staging[@]} staging modules -> $STAGING"

{
  echo "module ambit.dev/k8s-build"
  echo
  echo "go 1.25"
  echo
  echo "require k8s.io/kubernetes $KVER"
  echo
  echo "replace ("
  for m in "${staging[@]}"; do echo "	$m => $m $STAGING"; done
  echo ")"
} >"$SRC/go.mod"
# The build tag keeps these main packages out of any build, while `go mod
# tidy` (which considers all tags) keeps their requirements.
{
  echo "//go:build tools"
  echo
  echo "package tools"
  echo
  echo "import ("
  for c in "${COMPONENTS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done
  echo ")"
} >"$SRC/tools.go"

(cd "$SRC" && go mod tidy)

vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$KVER -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$MINOR -X $vpkg.gitTreeState=clean"
for c in "${COMPONENTS[@]}"; do
  if [ -x "$BIN/$c" ] && [ -f "$BIN/.$c.$KVER" ]; then continue; fi
  log "building $c (GOMAXPROCS=$PROCS, nice 19)"
  start=$(date +%s)
  (cd "$SRC" && GOMAXPROCS="$PROCS" nice -n 19 go build -p "$PROCS" -trimpath -ldflags "$ldflags" \
    -o "$BIN/$c.tmp" "k8s.io/kubernetes/cmd/$c")
  mv "$BIN/$c.tmp" "$BIN/$c"
  touch "$BIN/.$c.$KVER"
  log "built $c in $(( $(date +%s) - start ))s"
done

"$BIN/kubectl" version --client 2>/dev/null | grep -q "$KVER" || { log "kubectl does not report $KVER"; exit 1; }
echo "$KVER" >"$OUT/stamp"
log "done: $BIN"
