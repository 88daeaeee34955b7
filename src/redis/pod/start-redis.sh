#!/bin/sh
# start-redis.sh, shipped by the redis-k8s charm: the redis container's command.
# It starts redis-server as the primary or as a replica of the current primary,
# and, when the pod is stopped (Kubernetes sends SIGTERM to this script, the
# container's first process, before anything else), hands the primary over to an
# up-to-date replica so that no acknowledged write is lost:
#   1. pause writes (CLIENT PAUSE WRITE): clients wait, nothing new is acknowledged;
#   2. wait until a replica has everything this server acknowledged;
#   3. ask a peer Sentinel for a failover (SENTINEL FAILOVER) and wait for it to
#      name the new primary;
#   4. follow the new primary (REPLICAOF), then lift the pause: the writes that
#      waited are refused with READONLY, so their clients retry on the new primary;
#   5. stop redis-server.
# Any step that cannot complete in time ends the hand-over and the server stops
# as it would have; its data is on the pod's persistent storage.
#
# While it runs, it watches a replica's link: a replica whose primary has been
# unreachable for a while follows the primary the Sentinels name instead (see
# watch_link).
#
# `start-redis.sh ready PORT` is the container's readiness probe instead: ready means
# serving what clients expect, the primary or a replica whose link to its primary
# is up (so a rolling restart moves on only once the restarted replica has
# synced, and `juju status` shows a replica that lost its primary).
#
# The charm ships this file with settings.sh (this deployment's values) and
# common.sh written in place of the two lines that source them: the pod's file
# set keeps the same four files whatever the charm version, because Juju before
# 2.9.30 never adds a new file to a running pod.
set -eu
HERE="$(dirname "$0")"
# shellcheck source=/dev/null # written by the charm beside this script
. "$HERE/settings.sh"
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$HERE/common.sh"

LOCAL="$LOCAL_HOST"

if [ "${1:-}" = ready ]; then
    # The probe names the port of the pod template it belongs to: the files are
    # refreshed in a running pod, and during a rolling port change they already
    # hold the new port while this server still listens on the old one.
    if [ -n "${2:-}" ]; then
        is_port "$2" || exit 1
        PORT="$2"
    fi
    info="$(cli "$LOCAL" "$PORT" INFO replication 2>/dev/null | tr -d '\r')" || exit 1
    case "$info" in
        *role:master*) exit 0 ;;
        *master_link_status:up*) exit 0 ;;
    esac
    exit 1
fi

# The hand-over relies only on what this server reports now, not on the values
# this script started with (the unit count may have changed since, in files the
# kubelet has refreshed but this shell read long ago).

# Prints the replicas (their announced host names) that have acknowledged every
# byte of the replication stream this server has produced, one per line; fails
# when there is none.
replicas_in_sync() {
    ris_info="$(cli "$LOCAL" "$PORT" INFO replication 2>/dev/null | tr -d '\r')" || return 1
    ris_offset="$(printf '%s\n' "$ris_info" | sed -n 's/^master_repl_offset:\([0-9][0-9]*\)$/\1/p')"
    [ -n "$ris_offset" ] || return 1
    printf '%s\n' "$ris_info" | awk -v want="$ris_offset" '
        /^slave[0-9]+:/ {
            sub(/^slave[0-9]+:/, "")
            n = split($0, kv, ",")
            host = ""; state = ""; offset = -1
            for (i = 1; i <= n; i++) {
                split(kv[i], p, "=")
                if (p[1] == "ip") host = p[2]
                if (p[1] == "state") state = p[2]
                if (p[1] == "offset") offset = p[2] + 0
            }
            if (state == "online" && offset >= want + 0 && host != "") { print host; found = 1 }
        }
        END { exit found ? 0 : 1 }'
}

# Prints the primary the Sentinel of one of the pods given as arguments names, if
# it is another of this application's pods, as "host port".
new_primary() {
    for np_host in "$@"; do
        np_answer="$(cli "$np_host" "$SENTINEL_PORT" SENTINEL get-master-addr-by-name "$APP" 2>/dev/null)" || np_answer=""
        set -f
        # shellcheck disable=SC2086 # split the two-line answer into host and port
        set -- $np_answer
        set +f
        if [ "$#" -eq 2 ] && is_port "$2" && is_pod_host "$1" && [ "$1" != "$SELF" ]; then
            printf '%s %s\n' "$1" "$2"
            return 0
        fi
    done
    return 1
}

# Whether the hand-over's bound has passed: ho_deadline (seconds since the
# epoch) by the clock, or, in an image without a date command (ho_deadline 0),
# by the tenths of a second it has slept (ho_slept).
past() {
    if [ "$ho_deadline" -eq 0 ]; then
        [ "$ho_slept" -ge $((HANDOVER_WAIT_S * 20)) ]
    else
        [ "$(date +%s 2>/dev/null || echo "$ho_deadline")" -ge "$ho_deadline" ]
    fi
}

unpause() { cli "$LOCAL" "$PORT" CLIENT UNPAUSE >/dev/null 2>&1 || true; }

# Steps 1-4 above. Bounded: at most 2 x HANDOVER_WAIT_S in all, of which at
# most half for a replica to catch up, inside the pod's grace period.
hand_over() {
    [ "$(role_of "$LOCAL" "$PORT")" = master ] || return 0
    ho_replicas="$(cli "$LOCAL" "$PORT" INFO replication 2>/dev/null | tr -d '\r' | sed -n 's/^slave[0-9]*:ip=\([^,]*\),.*/\1/p')"
    if [ -z "$ho_replicas" ]; then
        return 0
    fi
    log "$SELF is the primary and is stopping: handing over to a replica"
    # One bound for the whole hand-over, 2 x HANDOVER_WAIT_S, of which catching
    # up may take at most half. Without a date command (an image without one)
    # the time slept counts instead.
    ho_slept=0
    if ho_now="$(date +%s 2>/dev/null)"; then
        ho_deadline=$((ho_now + HANDOVER_WAIT_S * 2))
    else
        ho_deadline=0
    fi
    if ! cli "$LOCAL" "$PORT" CLIENT PAUSE "$(((HANDOVER_WAIT_S * 2 + 5) * 1000))" WRITE >/dev/null 2>&1; then
        log "cannot pause writes: stopping without a hand-over"
        return 0
    fi
    ho_ticks=0
    until ho_synced="$(replicas_in_sync)"; do
        if [ "$ho_ticks" -ge $((HANDOVER_WAIT_S * 10)) ]; then
            log "no replica caught up within ${HANDOVER_WAIT_S}s: stopping without a hand-over"
            unpause
            return 0
        fi
        sleep 0.1
        ho_ticks=$((ho_ticks + 1))
        ho_slept=$((ho_slept + 1))
    done
    # The Sentinels run beside the replicas, one per pod. A Sentinel refuses
    # (NOGOODSLAVE) until it has had INFO from a replica itself: one that
    # started a moment ago, as a rolling restart has just replaced its pod, asks
    # its primary for the replicas at once and again only 10 s later. Ask again
    # until one accepts.
    ho_asked=""
    while [ -z "$ho_asked" ]; do
        for ho_host in $ho_synced $ho_replicas; do
            if is_pod_host "$ho_host" &&
                [ "$(cli "$ho_host" "$SENTINEL_PORT" SENTINEL FAILOVER "$APP" 2>/dev/null | tr -d '\r')" = OK ]; then
                ho_asked="$ho_host"
                break
            fi
        done
        if [ -z "$ho_asked" ]; then
            if past; then
                log "no peer Sentinel accepted a failover in time: stopping without a hand-over"
                unpause
                return 0
            fi
            sleep 0.5
            ho_slept=$((ho_slept + 5))
        fi
    done
    # shellcheck disable=SC2086 # one argument per replica host
    until ho_new="$(new_primary $ho_replicas)"; do
        if past; then
            log "the Sentinels named no new primary in time: stopping without a hand-over"
            unpause
            return 0
        fi
        sleep 0.1
        ho_slept=$((ho_slept + 1))
    done
    set -f
    # shellcheck disable=SC2086 # "host port"
    set -- $ho_new
    set +f
    cli "$LOCAL" "$PORT" REPLICAOF "$1" "$2" >/dev/null 2>&1 || true
    unpause
    log "handed the primary over to $1:$2 (failover asked of the Sentinel of $ho_asked)"
}

# Follows the primary the Sentinels name when this server is a replica whose
# link has been down for LINK_DOWN_CHECKS checks in a row (WATCH_S apart) and
# they name another server. A replica can be left following a server that is
# gone: it started while no peer answered (a stalled Sentinel, a name not yet
# published) and took ordinal 0 on this deployment's port, which a rolling port
# change has not reached yet. The Sentinels do not correct it: they know only
# the replicas their primary lists. A replica still syncing from the primary
# they name is left alone, as is one whose primary they do not know.
watch_link() {
    wl_sleep=""
    trap 'kill "$wl_sleep" 2>/dev/null; exit 0' TERM
    wl_down=0
    while :; do
        sleep "$WATCH_S" &
        wl_sleep=$!
        wait "$wl_sleep" || true
        wl_info="$(cli "$LOCAL" "$PORT" INFO replication 2>/dev/null | tr -d '\r')" || continue
        case "$wl_info" in
            *role:slave*master_link_status:down*) wl_down=$((wl_down + 1)) ;;
            *)
                wl_down=0
                continue
                ;;
        esac
        [ "$wl_down" -ge "$LINK_DOWN_CHECKS" ] || continue
        wl_current="$(printf '%s\n' "$wl_info" | sed -n 's/^master_host:\(.*\)$/\1/p') $(printf '%s\n' "$wl_info" | sed -n 's/^master_port:\(.*\)$/\1/p')"
        # This pod's own Sentinel first: by now it has heard the others.
        # shellcheck disable=SC2046 # one argument per peer host
        wl_named="$(sentinel_primary "$LOCAL" $(peer_hosts))" || continue
        if [ "$wl_named" != "$wl_current" ]; then
            if cli "$LOCAL" "$PORT" REPLICAOF "${wl_named% *}" "${wl_named#* }" >/dev/null 2>&1; then
                log "the link to $wl_current has been down for $((wl_down * WATCH_S))s and the Sentinels name ${wl_named% *}:${wl_named#* }: following it"
                wl_down=0
            fi
        fi
    done
}

find_primary
set -- "$CONFIG_DIR/redis.conf" --replica-announce-ip "$SELF"
if [ "$PRIMARY_HOST" = "$SELF" ]; then
    log "starting $SELF as the primary"
else
    log "starting $SELF as a replica of $PRIMARY_HOST:$PRIMARY_PORT"
    set -- "$@" --replicaof "$PRIMARY_HOST" "$PRIMARY_PORT"
fi

STOPPING=""
trap 'STOPPING=1' TERM INT
redis-server "$@" &
SERVER=$!
WATCHER=""
if command -v redis-cli >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1; then
    watch_link &
    WATCHER=$!
fi
stop_watching() {
    if [ -n "$WATCHER" ]; then
        kill -TERM "$WATCHER" 2>/dev/null || true
        wait "$WATCHER" 2>/dev/null || true
    fi
}
# `wait` returns when redis-server exits or when a trapped signal arrives.
while :; do
    if wait "$SERVER"; then status=0; else status=$?; fi
    if [ -n "$STOPPING" ]; then
        trap '' TERM INT
        stop_watching
        hand_over || true
        kill -TERM "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
        exit 0
    fi
    if ! kill -0 "$SERVER" 2>/dev/null; then
        stop_watching
        warn "redis-server exited with status $status"
        exit "$status"
    fi
done
