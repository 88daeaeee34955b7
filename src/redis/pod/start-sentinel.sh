#!/bin/sh
# start-sentinel.sh, shipped by the redis-k8s charm: the sentinel container's
# command. It copies sentinel.conf to the writable scratch directory (Sentinel
# rewrites its config file; an emptyDir in a pod spec, a directory this script
# creates under Pebble, which has no scratch volumes), appends this pod's announce address, the monitor line for the
# current primary and, when authentication is on, the passwords, and execs
# Sentinel. It always runs, even with one unit, so that Sentinel-aware clients
# always find one.
#
# The charm ships this file with settings.sh and common.sh written in place of
# the two lines that source them (see start-redis.sh).
set -eu
HERE="$(dirname "$0")"
# shellcheck source=/dev/null # written by the charm beside this script
. "$HERE/settings.sh"
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$HERE/common.sh"

# The copy may hold the password: keep it private to this container's user.
umask 077
find_primary
mkdir -p "$SENTINEL_DIR"
CONF="$SENTINEL_DIR/sentinel.conf"
cp "$CONFIG_DIR/sentinel.conf" "$CONF"
{
    echo "sentinel announce-ip $SELF"
    echo "sentinel monitor $APP $PRIMARY_HOST $PRIMARY_PORT $QUORUM"
    echo "sentinel down-after-milliseconds $APP $DOWN_AFTER_MS"
    echo "sentinel failover-timeout $APP $FAILOVER_TIMEOUT_MS"
    echo "sentinel parallel-syncs $APP $PARALLEL_SYNCS"
    if [ -n "$PASSWORD" ]; then
        # Clients and the other Sentinels authenticate with either password while
        # a rotation is under way; this Sentinel uses the current one towards
        # Redis (auth-pass) and towards the other Sentinels (sentinel-pass).
        if [ -n "$PREVIOUS_PASSWORD" ]; then
            printf 'user default on resetpass >%s >%s ~* &* +@all\n' "$PASSWORD" "$PREVIOUS_PASSWORD"
        else
            printf 'user default on resetpass >%s ~* &* +@all\n' "$PASSWORD"
        fi
        printf 'sentinel sentinel-pass %s\n' "$PASSWORD"
        printf 'sentinel auth-pass %s %s\n' "$APP" "$PASSWORD"
    fi
} >>"$CONF"

# Sentinel exits if the primary's name does not resolve, and a new pod's DNS
# record appears a moment after the pod: wait for it (bounded) if the image can
# tell. IP addresses need no wait (and `getent hosts` would look up their names).
case "$PRIMARY_HOST" in
    *:*) ;;
    *[!0-9.]*)
        if command -v getent >/dev/null 2>&1; then
            waited=0
            until getent hosts "$PRIMARY_HOST" >/dev/null 2>&1 || [ "$waited" -ge "$RESOLVE_WAIT_S" ]; do
                sleep 1
                waited=$((waited + 1))
            done
        fi
        ;;
esac
log "starting the Sentinel of $SELF, monitoring $PRIMARY_HOST:$PRIMARY_PORT"
exec redis-server "$CONF" --sentinel
