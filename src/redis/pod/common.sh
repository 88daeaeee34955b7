# shellcheck shell=sh
# common.sh, shipped by the redis-k8s charm: what start-redis.sh, start-sentinel.sh
# and ready.sh share. They source settings.sh (this deployment's values, written
# by the charm) and then this file, from the directory they are in.
# shellcheck disable=SC2034 # variables set here are used by the scripts sourcing it

log() { printf 'redis-k8s: %s\n' "$*"; }
warn() { printf 'redis-k8s: %s\n' "$*" >&2; }

# This pod is <app>-<ordinal>, a StatefulSet pod, reachable as
# <app>-<ordinal>.<app>-endpoints through the headless service (which publishes
# pods before they are ready). Its name is in HOSTNAME, which the container
# runtime sets, else it is the host name. Only tests set the REDIS_K8S_*
# variables, to stand in for the pod's name and the cluster's DNS.
# shellcheck disable=SC3028 # HOSTNAME comes from the container runtime, not the shell
POD_NAME="${REDIS_K8S_POD_NAME:-${HOSTNAME:-$(uname -n)}}"
ORDINAL="${POD_NAME##*-}"
case "$ORDINAL" in
    '' | *[!0-9]*)
        warn "cannot read this pod's ordinal from its name '$POD_NAME'"
        exit 1
        ;;
esac
HOST_PREFIX="${REDIS_K8S_HOST_PREFIX-$APP-}"
HOST_SUFFIX="${REDIS_K8S_HOST_SUFFIX-.$APP-endpoints}"
host_of() { printf '%s%s%s\n' "$HOST_PREFIX" "$1" "$HOST_SUFFIX"; }
SELF="$(host_of "$ORDINAL")"

# The password, and during a rotation the one it replaces, from the mounted
# Secret. They stay in this shell: redis-cli gets the password through
# REDISCLI_AUTH, never on a command line.
PASSWORD=""
PREVIOUS_PASSWORD=""
if [ "$REQUIRE_AUTH" = yes ]; then
    if [ ! -s "$AUTH_DIR/password" ]; then
        warn "authentication is on but $AUTH_DIR/password is missing or empty"
        exit 1
    fi
    PASSWORD="$(cat "$AUTH_DIR/password")"
    if [ -s "$AUTH_DIR/previous-password" ]; then
        PREVIOUS_PASSWORD="$(cat "$AUTH_DIR/previous-password")"
    fi
fi

# cli HOST PORT ARG...: one redis-cli command, authenticated, bounded in time.
cli() {
    cli_host=$1
    cli_port=$2
    shift 2
    if [ -n "$PASSWORD" ]; then
        REDISCLI_AUTH="$PASSWORD" timeout "$QUERY_TIMEOUT_S" redis-cli --raw -h "$cli_host" -p "$cli_port" "$@"
    else
        timeout "$QUERY_TIMEOUT_S" redis-cli --raw -h "$cli_host" -p "$cli_port" "$@"
    fi
}

require_tools() {
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            warn "the image has no $tool, which this script needs"
            exit 1
        fi
    done
}

is_port() { case "$1" in '' | *[!0-9]* | ??????*) return 1 ;; esac; }

# Whether HOST names one of this application's pods, and no other. A Sentinel's
# answer is trusted only then: anyone who reaches a Sentinel without a password
# could make it name their own server.
is_pod_host() {
    pod_rest="${1#"$HOST_PREFIX"}"
    [ "$pod_rest" != "$1" ] || return 1
    pod_ordinal="${pod_rest%"$HOST_SUFFIX"}"
    if [ -n "$HOST_SUFFIX" ] && [ "$pod_ordinal" = "$pod_rest" ]; then
        return 1
    fi
    case "$pod_ordinal" in '' | *[!0-9]*) return 1 ;; esac
    return 0
}

# The first line of ROLE from the Redis at HOST PORT: master, slave, or nothing.
# Fails as redis-cli did: 124 when it had no answer in time.
role_of() {
    ro_reply="$(cli "$1" "$2" ROLE 2>/dev/null)" || return $?
    printf '%s\n' "$ro_reply" | head -n 1 | tr -d '\r'
}

# Sets PRIMARY_HOST and PRIMARY_PORT: the primary this pod must follow, or this
# pod itself. In order:
#  1. what a peer Sentinel names, if it is one of this application's pods and
#     answers there as a primary (a Sentinel that has not yet seen a port change
#     names the old port: the pod is tried on this deployment's port too);
#  2. a peer pod that answers on this deployment's port as a primary;
#  3. ordinal 0, when nothing answers at all (a fresh deployment).
# This pod's own Sentinel is never asked: it may have just started from the
# static config. When a Sentinel names this very pod, this pod was the primary
# and restarted before any failover: it starts as the primary again.
# "Nothing answers" means nothing listens: a peer that is there but did not
# answer in time (an overloaded node, a stalled Sentinel) knows the primary, so
# while one did, the pod asks again, for at most DISCOVERY_WAIT_S.
find_primary() {
    if [ "$UNITS" -gt 1 ]; then
        require_tools redis-cli timeout
    fi
    fp_waited=0
    while :; do
        FP_STALLED=""
        if find_primary_once; then
            return 0
        fi
        if [ -z "$FP_STALLED" ] || [ "$fp_waited" -ge "$DISCOVERY_WAIT_S" ]; then
            break
        fi
        log "$FP_STALLED did not answer in time: asking the peers again"
        sleep 1
        fp_waited=$((fp_waited + 1 + QUERY_TIMEOUT_S))
    done
    PRIMARY_HOST="$(host_of 0)"
    PRIMARY_PORT="$PORT"
    log "no peer knows a primary, so ordinal 0 ($PRIMARY_HOST) is the primary"
}

# Steps 1 and 2 of find_primary: succeeds when one of them found the primary;
# sets FP_STALLED to a peer that had no answer in time.
find_primary_once() {
    fp_i=0
    while [ "$fp_i" -lt "$UNITS" ]; do
        if [ "$fp_i" != "$ORDINAL" ]; then
            fp_peer="$(host_of "$fp_i")"
            fp_rc=0
            fp_answer="$(cli "$fp_peer" "$SENTINEL_PORT" SENTINEL get-master-addr-by-name "$APP" 2>/dev/null)" || fp_rc=$?
            if [ "$fp_rc" -eq 124 ]; then
                FP_STALLED="the Sentinel of $fp_peer"
            fi
            set -f
            # shellcheck disable=SC2086 # split the two-line answer into host and port
            set -- $fp_answer
            set +f
            if [ "$fp_rc" -eq 0 ] && [ "$#" -eq 2 ] && is_port "$2"; then
                if ! is_pod_host "$1"; then
                    warn "the Sentinel of $fp_peer names $1:$2, which is not one of this application's pods: ignored"
                elif [ "$1" = "$SELF" ] && [ "$2" = "$PORT" ]; then
                    PRIMARY_HOST="$SELF"
                    PRIMARY_PORT="$PORT"
                    log "the Sentinel of $fp_peer names this pod as the primary"
                    return 0
                elif [ "$1" = "$SELF" ]; then
                    # This pod was the primary on another port and stopped without handing over: the
                    # Sentinels will promote a replica. Starting as a primary here would take writes
                    # that the failover then throws away.
                    wait_for_failover
                    return 0
                elif [ "$(role_of "$1" "$2")" = master ]; then
                    PRIMARY_HOST="$1"
                    PRIMARY_PORT="$2"
                    log "the Sentinel of $fp_peer names $PRIMARY_HOST:$PRIMARY_PORT as the primary"
                    return 0
                elif [ "$2" != "$PORT" ] && [ "$(role_of "$1" "$PORT")" = master ]; then
                    PRIMARY_HOST="$1"
                    PRIMARY_PORT="$PORT"
                    log "the Sentinel of $fp_peer names $1:$2, which now listens on $PORT: following it there"
                    return 0
                else
                    log "the Sentinel of $fp_peer names $1:$2, which does not answer as a primary"
                fi
            fi
        fi
        fp_i=$((fp_i + 1))
    done
    fp_i=0
    while [ "$fp_i" -lt "$UNITS" ]; do
        if [ "$fp_i" != "$ORDINAL" ]; then
            fp_peer="$(host_of "$fp_i")"
            fp_rc=0
            fp_role="$(role_of "$fp_peer" "$PORT")" || fp_rc=$?
            if [ "$fp_role" = master ]; then
                PRIMARY_HOST="$fp_peer"
                PRIMARY_PORT="$PORT"
                log "no Sentinel names a primary that answers, but $fp_peer answers as one"
                return 0
            elif [ "$fp_rc" -eq 124 ]; then
                FP_STALLED="$fp_peer"
            fi
        fi
        fp_i=$((fp_i + 1))
    done
    return 1
}

# Prints "host port" of the primary that a Sentinel at one of the HOSTs given
# names, if that is another of this application's pods and it answers there as
# a primary; fails when no Sentinel names one.
sentinel_primary() {
    for sp_host in "$@"; do
        sp_answer="$(cli "$sp_host" "$SENTINEL_PORT" SENTINEL get-master-addr-by-name "$APP" 2>/dev/null)" || sp_answer=""
        set -f
        # shellcheck disable=SC2086 # split the two-line answer into host and port
        set -- $sp_answer
        set +f
        if [ "$#" -eq 2 ] && is_port "$2" && is_pod_host "$1" && [ "$1" != "$SELF" ] &&
            [ "$(role_of "$1" "$2")" = master ]; then
            printf '%s %s\n' "$1" "$2"
            return 0
        fi
    done
    return 1
}

# The peer pods by the counts this script started with, one per line.
peer_hosts() {
    ph_i=0
    while [ "$ph_i" -lt "$UNITS" ]; do
        if [ "$ph_i" != "$ORDINAL" ]; then
            host_of "$ph_i"
        fi
        ph_i=$((ph_i + 1))
    done
}

# The Sentinels name this pod as the primary at a port it no longer listens on:
# waits (at most FAILOVER_WAIT_S) for them to promote another pod, and follows it;
# else this pod is the primary after all.
wait_for_failover() {
    log "the Sentinels name this pod as the primary on another port: waiting for them to fail over"
    wf_waited=0
    while [ "$wf_waited" -lt "$FAILOVER_WAIT_S" ]; do
        # shellcheck disable=SC2046 # one argument per peer host
        if wf_found="$(sentinel_primary $(peer_hosts))"; then
            PRIMARY_HOST="${wf_found% *}"
            PRIMARY_PORT="${wf_found#* }"
            log "the Sentinels now name $PRIMARY_HOST:$PRIMARY_PORT as the primary"
            return 0
        fi
        sleep 1
        wf_waited=$((wf_waited + 1))
    done
    PRIMARY_HOST="$SELF"
    PRIMARY_PORT="$PORT"
    log "no failover within ${FAILOVER_WAIT_S}s: starting as the primary"
}
