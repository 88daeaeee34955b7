//! How many units there are, which pod is the primary, and how clients should name it.
//!
//! The workload is a StatefulSet (the charm declares storage), so pods have stable names `<app>-<n>`
//! and DNS names `<app>-<n>.<app>-endpoints` through the headless service. Pod 0 starts as the
//! primary; after a failover Sentinel knows the current one. The leader asks the Sentinels (short
//! timeout: no hook ever blocks for long) in update-status and relation hooks, and shares the answer
//! in the peer application bag (`primary`, not secret), where every unit reads it; every unit then
//! publishes the primary's address to clients.
//!
//! With one unit the address clients get is this application's ingress address (`network-get`), as
//! before; with several it is the primary pod's stable DNS name, never a pod IP (pod IPs change on
//! restart, which broke clients of the other Redis charms).

use std::time::Duration;

use anyhow::Result;

use super::auth::PEERS;
use super::resp;
use crate::juju::Settings;
use crate::layers::Ctx;
use crate::reactive::joined_units;

/// How long the leader waits for each Sentinel.
pub const SENTINEL_TIMEOUT: Duration = Duration::from_millis(700);
/// The peer-bag key holding the primary pod's name.
pub const PRIMARY_KEY: &str = "primary";
const CACHE_KEY: &str = "redis.topology.primary";

/// Units of the application, this one included (peer relation members + 1).
pub fn units(ctx: &Ctx<'_>) -> u32 {
    let others: usize = joined_units(ctx, PEERS).values().map(Vec::len).sum();
    u32::try_from(others + 1).unwrap_or(u32::MAX)
}

/// `<pod>.<app>-endpoints`: a pod's stable DNS name, from its name (`<app>-<n>`).
pub fn pod_host(app: &str, pod: &str) -> String {
    format!("{pod}.{app}-endpoints")
}

/// The primary pod's name: as last shared by the leader, else pod 0.
pub fn primary_pod(ctx: &Ctx<'_>) -> String {
    ctx.kv.get_as(CACHE_KEY).unwrap_or_else(|| format!("{}-0", ctx.env.app_name()))
}

/// Remembers the primary read from the peer bag (called wherever the bag is read).
pub fn note_shared(ctx: &mut Ctx<'_>, bag: &Settings) {
    if let Some(p) = bag.get(PRIMARY_KEY).filter(|p| !p.is_empty()) {
        ctx.kv.set_as(CACHE_KEY, p);
    }
}

fn asks_sentinel(hook: &str) -> bool {
    hook == "update-status" || hook.starts_with("db-relation-") || hook.starts_with("redis-peers-relation-")
}

/// The pod name in a Sentinel answer (`redis-k8s-1.redis-k8s-endpoints` → `redis-k8s-1`), if it is one
/// of this application's pods.
pub fn pod_of(app: &str, host: &str) -> Option<String> {
    let pod = host.split('.').next()?;
    let n = pod.strip_prefix(app)?.strip_prefix('-')?;
    n.parse::<u32>().ok().map(|_| pod.to_string())
}

/// Leader only, several units, in the hooks that check: asks the Sentinels which pod is the primary and
/// shares a change in the peer bag. Returns whether the primary changed. A Sentinel that does not answer
/// in time changes nothing (the last known primary stays published).
pub fn refresh_primary(ctx: &mut Ctx<'_>, password: Option<&str>) -> Result<bool> {
    let n = units(ctx);
    if !ctx.is_leader || n < 2 || !asks_sentinel(ctx.hook) {
        return Ok(false);
    }
    let app = ctx.env.app_name().to_string();
    let sentinels = super::podspec::sentinel_addresses(&app, n);
    let Some((host, _port)) = resp::sentinel_primary(&sentinels, &app, password, SENTINEL_TIMEOUT) else {
        ctx.trace.push("no Sentinel answered; keeping the last known primary".into());
        return Ok(false);
    };
    let Some(pod) = pod_of(&app, &host) else {
        ctx.trace.push(format!("Sentinel named {host:?}, not one of this application's pods; ignored"));
        return Ok(false);
    };
    if pod == primary_pod(ctx) {
        return Ok(false);
    }
    if let Some(rid) = super::auth::peer_relation(ctx) {
        let mut bag = Settings::new();
        bag.insert(PRIMARY_KEY.to_string(), pod.clone());
        ctx.tools.relation_set(&rid, &bag, true)?;
    }
    ctx.kv.set_as(CACHE_KEY, &pod);
    Ok(true)
}

/// How long the leader waits, at most, for Sentinel to finish a failover it asked for.
pub const FAILOVER_WAIT: Duration = Duration::from_secs(8);

/// A unit is leaving (scale-down): its pod must not stay, or become, the primary. A StatefulSet always
/// drops its highest ordinal, and Juju's unit numbers are not pod ordinals (units are numbered for good,
/// ordinals are reused), so the departing pod is `<app>-<ordinal>` with `ordinal` the number of units
/// that remain. The leader tells that pod's Redis never to be promoted (`replica-priority 0`) and, when
/// it is the primary, asks Sentinel for a failover to a remaining pod, waiting a bounded time for the new
/// primary before the pod goes. Redis or Sentinel not answering is logged in the trace and leaves
/// Sentinel's own detection to act.
pub fn move_primary_off(ctx: &mut Ctx<'_>, ordinal: u32, password: Option<&str>, port: u16) -> Result<()> {
    let app = ctx.env.app_name().to_string();
    let n = ordinal;
    let pod = format!("{app}-{n}");
    let redis = format!("{}:{port}", pod_host(&app, &pod));
    if let Err(e) = resp::query(&redis, password, &["CONFIG", "SET", "replica-priority", "0"], SENTINEL_TIMEOUT)
        .and_then(|r| r.into_result())
    {
        ctx.trace.push(format!("could not lower {pod}'s replica priority: {e:#}"));
    }
    // The Sentinels of the pods that remain: ordinals below the departing one.
    let sentinels = super::podspec::sentinel_addresses(&app, n.max(1));
    let sentinels: Vec<String> = if n == 0 { Vec::new() } else { sentinels };
    let Some((host, _)) = resp::sentinel_primary(&sentinels, &app, password, SENTINEL_TIMEOUT) else {
        ctx.trace.push("no Sentinel answered while a unit departs".into());
        return Ok(());
    };
    if pod_of(&app, &host).as_deref() != Some(pod.as_str()) {
        return Ok(());
    }
    let asked = sentinels.iter().any(|s| {
        resp::query(s, password, &["SENTINEL", "FAILOVER", &app], SENTINEL_TIMEOUT)
            .and_then(|r| r.into_result())
            .is_ok()
    });
    if !asked {
        ctx.trace.push(format!("no Sentinel accepted a failover away from {pod}"));
        return Ok(());
    }
    let deadline = std::time::Instant::now() + FAILOVER_WAIT;
    while std::time::Instant::now() < deadline {
        if let Some((h, _)) = resp::sentinel_primary(&sentinels, &app, password, SENTINEL_TIMEOUT)
            && let Some(new) = pod_of(&app, &h).filter(|p| *p != pod)
        {
            if let Some(rid) = super::auth::peer_relation(ctx) {
                let mut bag = Settings::new();
                bag.insert(PRIMARY_KEY.to_string(), new.clone());
                ctx.tools.relation_set(&rid, &bag, true)?;
            }
            ctx.kv.set_as(CACHE_KEY, &new);
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    ctx.trace.push(format!("Sentinel did not finish the failover away from {pod} in time"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names_from_sentinel_answers() {
        assert_eq!(pod_of("redis-k8s", "redis-k8s-1.redis-k8s-endpoints").as_deref(), Some("redis-k8s-1"));
        assert_eq!(pod_of("redis-k8s", "redis-k8s-12").as_deref(), Some("redis-k8s-12"));
        assert_eq!(pod_of("redis-k8s", "10.1.2.3"), None);
        assert_eq!(pod_of("redis-k8s", "other-1.x"), None);
        assert_eq!(pod_of("redis-k8s", "redis-k8s-x.y"), None);
        assert_eq!(pod_host("r", "r-2"), "r-2.r-endpoints");
    }
}
