#!/usr/bin/env bash
# The README's first command ends here: run tunkeeper in a network namespace of its own, so trying
# it never touches the host's network. The namespace is removed however the demo ends.
set -euo pipefail
cd "$(dirname "$0")/.."
ns="tunkeeper-demo-$$"
ip netns add "$ns"
trap 'ip netns delete "$ns" 2>/dev/null || true' EXIT INT TERM
ip -n "$ns" link set lo up
echo "== network namespace $ns"
node dist/examples/library/udp-echo.js --netns "$ns"
