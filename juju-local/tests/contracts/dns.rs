//! Cluster DNS as pods and hooks see it (findings §11): the namespace is the model name; resolv.conf
//! has Kubernetes' search list (`<ns>.svc.cluster.local svc.cluster.local cluster.local`, ndots:5), so
//! a charm can learn the cluster domain; `<pod>.<app>-endpoints`, `<app>` and their fully qualified
//! forms resolve everywhere; a pod's own hostname resolves only in that pod (kubelet's hosts file).

use crate::common::*;

const ARM: &str = r#"  update-status)
    {
      grep -E '^(search|options)' /etc/resolv.conf
      for n in testredis-1.testredis-endpoints testredis-1.testredis-endpoints.local.svc.cluster.local \
               testredis testredis.local.svc.cluster.local testredis-1; do
        if a=$(getent hosts "$n"); then echo "$n -> $(echo "$a" | awk '{print $1}' | sort | tr '\n' ' ')"; else echo "$n -> none"; fi
      done
    } > "$STATE/dns" ;;"#;

#[test]
fn pods_and_hooks_resolve_cluster_names() {
    let m = TestModel::new("dns");
    let charm = build_charm(&m.work, &CharmOpts { stateful: true, extra_case: ARM.into(), ..Default::default() });
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0", "-n", "2"]);
    m.wait_active("testredis");
    let (a0, a1) = (m.address("testredis/0"), m.address("testredis/1"));
    let mut both = [a0.clone(), a1.clone()];
    both.sort();
    let both = format!("{} {} ", both[0], both[1]);
    // From a hook (the operator pod).
    m.ok(&["run-hook", "testredis/0", "update-status"]);
    let dns = m.state_file("testredis", 0, "dns").unwrap();
    let want = format!(
        "search local.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n\
         testredis-1.testredis-endpoints -> {a1} \n\
         testredis-1.testredis-endpoints.local.svc.cluster.local -> {a1} \n\
         testredis -> {both}\ntestredis.local.svc.cluster.local -> {both}\ntestredis-1 -> none\n"
    );
    assert_eq!(dns, want);
    // From a pod: the same names, plus its own hostname.
    let (_, out) = m.exec_in_pod(
        "testredis-0",
        0,
        "hostname; getent hosts testredis-0 | awk '{print $1}'; getent hosts testredis-1.testredis-endpoints | awk '{print $1}'; \
         getent hosts testredis-1 || echo none",
    );
    assert_eq!(out, format!("testredis-0\n{a0}\n{a1}\nnone\n"));
}
