#!/usr/bin/env bash
# Installs the system packages that the netns tests and `ambit up` need on a
# fresh Debian machine, only when missing. Idempotent; run as root.
#   iproute2  - `ip netns`, veth, bridge, routes
#   iptables  - in-pod capture rules (nf_tables backend)
#   nftables  - kernel modules/userspace for the nf_tables backend
#   tcpdump   - tests prove no plaintext leaves a node
#   util-linux - nsenter (pod processes and `ambit exec`)
#   prometheus - `ambit up --observability` (run as a plain process, never as a service)
#   containernetworking-plugins - bridge, host-local, loopback CNI plugins for the
#                test/k8s node host (in /usr/lib/cni, not on PATH)
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-system.sh: must run as root (it installs packages with apt-get)" >&2
  exit 1
fi

declare -A want=(
  [ip]=iproute2
  [iptables]=iptables
  [nft]=nftables
  [tcpdump]=tcpdump
  [nsenter]=util-linux
  [chromium]=chromium # the dashboard's browser test (playwright-core drives Debian's chromium)
  [prometheus]=prometheus # `ambit up --observability` and its netns test (also brings promtool)
)

missing=()
for cmd in "${!want[@]}"; do
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ] && [ ! -x "/sbin/$cmd" ]; then
    missing+=("${want[$cmd]}")
  fi
done

if [ ! -x /usr/lib/cni/bridge ]; then
  missing+=(containernetworking-plugins)
fi

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup-system.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Named network namespaces live here; `ip netns add` creates it, but `ambit`
# may read it before the first namespace exists.
mkdir -p /var/run/netns
echo "setup-system.sh: ok ($(iptables --version 2>/dev/null || echo 'iptables ?'))"
