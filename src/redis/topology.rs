//! Where things are: pod names, the names clients are given, and which pod a departing unit takes away.
//!
//! The workload is a StatefulSet (the charm declares storage), so pods have stable names `<app>-<n>`, reachable
//! inside the model's namespace as `<app>-<n>.<app>-endpoints` through the headless service. Clients may live in
//! other namespaces (other models), so what the charm publishes is fully qualified:
//! `<app>-<n>.<app>-endpoints.<namespace>.svc.<cluster domain>`. The namespace is the model's name (Juju creates
//! one namespace per model, named after it); the cluster domain is read from the pod's `/etc/resolv.conf`, whose
//! search list Kubernetes writes as `<namespace>.svc.<domain> svc.<domain> <domain>`, else it is `cluster.local`.
//!
//! Juju numbers units for good, while a StatefulSet keeps its pods at ordinals `0..N-1` and drops the highest on
//! scale-down: a departing unit takes pod `<app>-<N-1>` away, whatever its own unit number.

use super::config::SENTINEL_PORT;
use super::resolve::ResolvConf;

/// The default Kubernetes cluster domain.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The Sentinel quorum for `units` pods: a strict majority, ⌊units/2⌋+1 (1 for 0 or 1 unit).
pub fn sentinel_quorum(units: u32) -> u32 {
    units.max(1) / 2 + 1
}

/// The stable DNS name of pod `<app>-<ordinal>` inside the model's namespace.
pub fn pod_host(app: &str, ordinal: u32) -> String {
    format!("{app}-{ordinal}.{app}-endpoints")
}

/// The pod name of ordinal `n`.
pub fn pod_name(app: &str, n: u32) -> String {
    format!("{app}-{n}")
}

/// The pod's name in an answer (`redis-k8s-1.redis-k8s-endpoints…` or `redis-k8s-1`) if it is one of this
/// application's pods; anything else (an IP, another application's pod) is `None`.
pub fn pod_of(app: &str, host: &str) -> Option<String> {
    let pod = host.split('.').next()?;
    let rest: Vec<&str> = host.split('.').skip(1).collect();
    if !(rest.is_empty() || rest[0] == format!("{app}-endpoints")) {
        return None;
    }
    let n = pod.strip_prefix(app)?.strip_prefix('-')?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then(|| pod.to_string())
}

/// The ordinal of pod `<app>-<n>`.
pub fn ordinal(pod: &str) -> Option<u32> {
    pod.rsplit('-').next()?.parse().ok()
}

/// Names as clients in any namespace of the cluster resolve them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub app: String,
    /// `<namespace>.svc.<cluster domain>`.
    pub zone: String,
}

impl Names {
    /// For `app` in `namespace`, with the cluster domain from `resolv_conf` (the text of /etc/resolv.conf).
    pub fn new(app: &str, namespace: &str, resolv_conf: Option<&str>) -> Names {
        let domain =
            resolv_conf.and_then(|text| cluster_domain(text, namespace)).unwrap_or(DEFAULT_CLUSTER_DOMAIN.into());
        Names { app: app.to_string(), zone: format!("{namespace}.svc.{domain}") }
    }

    /// From the hook's model name and this pod's /etc/resolv.conf.
    pub fn here(app: &str, namespace: &str) -> Names {
        let text = std::fs::read_to_string(RESOLV_CONF).ok();
        Names::new(app, namespace, text.as_deref())
    }

    /// `<pod>.<app>-endpoints.<namespace>.svc.<domain>`.
    pub fn pod_fqdn(&self, pod: &str) -> String {
        format!("{pod}.{}-endpoints.{}", self.app, self.zone)
    }

    /// Every pod's Sentinel, `fqdn:26379`.
    pub fn sentinels(&self, units: u32) -> Vec<String> {
        (0..units.max(1)).map(|n| format!("{}:{SENTINEL_PORT}", self.pod_fqdn(&pod_name(&self.app, n)))).collect()
    }
}

/// The cluster domain in a resolv.conf's search list: the `X` of a `<namespace>.svc.X` entry.
fn cluster_domain(resolv_conf: &str, namespace: &str) -> Option<String> {
    let prefix = format!("{namespace}.svc.");
    ResolvConf::parse(resolv_conf)
        .search
        .into_iter()
        .find_map(|d| d.strip_prefix(&prefix).map(str::to_string))
        .filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_host_is_the_name_inside_the_namespace() {
        assert_eq!(pod_host("redis", 2), "redis-2.redis-endpoints");
    }

    #[test]
    fn pod_names_from_answers() {
        assert_eq!(pod_of("redis-k8s", "redis-k8s-1.redis-k8s-endpoints").as_deref(), Some("redis-k8s-1"));
        assert_eq!(
            pod_of("redis-k8s", "redis-k8s-1.redis-k8s-endpoints.m.svc.cluster.local").as_deref(),
            Some("redis-k8s-1")
        );
        assert_eq!(pod_of("redis-k8s", "redis-k8s-12").as_deref(), Some("redis-k8s-12"));
        assert_eq!(pod_of("redis-k8s", "10.1.2.3"), None);
        assert_eq!(pod_of("redis-k8s", "other-1.x"), None);
        assert_eq!(pod_of("redis-k8s", "redis-k8s-1.evil.example.com"), None);
        assert_eq!(pod_of("redis-k8s", "redis-k8s-x.y"), None);
        assert_eq!(pod_of("redis-k8s", "redis-k8s-"), None);
        assert_eq!(ordinal("redis-k8s-12"), Some(12));
    }

    #[test]
    fn names_are_fully_qualified_with_the_cluster_domain_kubernetes_gives() {
        let conf =
            "search prod.svc.corp.example svc.corp.example corp.example\nnameserver 10.152.183.10\noptions ndots:5\n";
        let n = Names::new("redis-k8s", "prod", Some(conf));
        assert_eq!(n.pod_fqdn("redis-k8s-0"), "redis-k8s-0.redis-k8s-endpoints.prod.svc.corp.example");
        assert_eq!(n.sentinels(2)[1], "redis-k8s-1.redis-k8s-endpoints.prod.svc.corp.example:26379");
        let plain = Names::new("r", "m", Some("nameserver 1.1.1.1\n"));
        assert_eq!(plain.pod_fqdn("r-0"), "r-0.r-endpoints.m.svc.cluster.local");
        assert_eq!(Names::new("r", "m", None).zone, "m.svc.cluster.local");
    }
}
