#!/usr/bin/env bash
# The README's first command ends here: run tunkeeper in a network namespace of its own, so trying
# it never touches the host's network. The namespace is removed however the demo ends.
#   npm run demo              declarations from examples/, then a packet round trip
#   NETNS=NAME npm run demo   use (and create if missing) that namespace, and keep it afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
tk=bin/tunkeeper
ns="${NETNS:-tunkeeper-demo-$$}"
if ! ip netns list | awk '{print $1}' | grep -qx "$ns"; then
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  if [ -z "${NETNS:-}" ]; then trap 'ip netns delete "$ns" 2>/dev/null || true' EXIT INT TERM; fi
fi
step() { printf '\n== %s\n' "$*"; }

step "tunkeeper validate -f examples/"
$tk validate -f examples/
step "tunkeeper plan -f examples/ --netns $ns   (exit 2: changes pending)"
$tk plan -f examples/ --netns "$ns" || [ $? -eq 2 ]
step "tunkeeper apply -f examples/ --netns $ns"
$tk apply -f examples/ --netns "$ns"
step "tunkeeper state --netns $ns"
$tk state --netns "$ns"
step "drift: ip link set tk-p2p0 mtu 1300 and down, then apply again"
ip -n "$ns" link set tk-p2p0 mtu 1300 down
$tk plan -f examples/ --netns "$ns" || [ $? -eq 2 ]
$tk apply -f examples/ --netns "$ns"
step "tunkeeper plan -f examples/ --netns $ns   (exit 0: in sync)"
$tk plan -f examples/ --netns "$ns"
step "packets through a TUN device from JavaScript (tunkeeper/tun)"
node dist/examples/library/udp-echo.js --netns "$ns"
