#!/usr/bin/env bash
# Deploys the built charm (./redis-k8s.charm) on juju-local, checks Redis answers at the unit's pod
# address, moves it to port 7000 through `juju-local config`, shows the status, then tears down.
# Needs root (network namespaces); build the charm first. Usage: scripts/demo.sh [path/to/charm]
# DEMO_JUJU_VERSION sets the model's Juju version (e.g. 3.6.0 for redis-k8s-sidecar.charm, which Juju 2.x
# cannot deploy).
set -euo pipefail

cd "$(dirname "$0")/.."
CHARM="${1:-./redis-k8s.charm}"
APP="${APP:-redis-k8s}"
export JUJU_LOCAL_MODEL_DIR="${JUJU_LOCAL_MODEL_DIR:-$PWD/.juju-local}"

step() { printf '\n==> %s\n' "$*"; }

step "building juju-local"
cargo build --release -q -p juju-local
JL="$PWD/target/release/juju-local"

[ -f "$CHARM" ] || { echo "ERROR no charm at $CHARM (build it first)" >&2; exit 1; }

step "juju-local destroy (clean slate; failure is fine)"
"$JL" destroy || true

VERSION_ARGS=()
if [ -n "${DEMO_JUJU_VERSION:-}" ]; then VERSION_ARGS=(--juju-version "$DEMO_JUJU_VERSION"); fi
step "juju-local deploy $CHARM --resource redis-image=redis:7.0 ${VERSION_ARGS[*]}"
"$JL" deploy "$CHARM" --resource redis-image=redis:7.0 "${VERSION_ARGS[@]}"

step "waiting (at most 20 s) for $APP/0 to be active"
"$JL" wait "$APP" --timeout 20
ADDR="$("$JL" address "$APP/0")"
echo "unit address: $ADDR"

step "juju-local run-action $APP/0 get-password (auth is on by default)"
# The password goes to redis-cli through REDISCLI_AUTH, never on a command line.
REDISCLI_AUTH="$("$JL" run-action "$APP/0" get-password | sed -n 's/^ *password: *//p' | tr -d "'\"")"
export REDISCLI_AUTH
[ -n "$REDISCLI_AUTH" ] || { echo "ERROR get-password returned no password" >&2; exit 1; }
echo "password: ${#REDISCLI_AUTH} characters (not shown)"

step "redis-cli -h $ADDR -p 6379 PING"
redis-cli -h "$ADDR" -p 6379 PING

step "juju-local config $APP port=7000"
"$JL" config "$APP" port=7000

step "waiting (at most 20 s) for $APP/0 to be active again"
"$JL" wait "$APP" --timeout 20
for _ in $(seq 1 40); do
    if [ "$(redis-cli -h "$ADDR" -p 7000 PING 2>/dev/null || true)" = PONG ]; then break; fi
    sleep 0.5
done

step "redis-cli -h $ADDR -p 7000 PING"
redis-cli -h "$ADDR" -p 7000 PING

step "juju-local status"
"$JL" status

step "juju-local destroy"
"$JL" destroy
