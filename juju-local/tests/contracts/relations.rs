//! Relations, resources, storage, actions and teardown: the stand-in client sees the provider's
//! data; attach-resource runs upgrade-charm + config-changed and re-sends the spec; storage is
//! attached after start; remove and destroy leave no process, namespace or bridge behind.

use crate::common::*;

#[test]
fn relate_gives_the_client_the_providers_data() {
    let m = TestModel::new("relate");
    let charm = build_charm(&m.work, &CharmOpts::default());
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0"]);
    m.wait_active("testredis");
    let out = m.ok(&["relate", "testredis", "client"]);
    let view: serde_json::Value = serde_yaml::from_str(&out).expect("relate prints YAML");
    let addr = m.address("testredis/0");
    assert_eq!(view["unit-data"]["testredis/0"]["host"], addr.as_str());
    assert_eq!(view["unit-data"]["testredis/0"]["port"], "6379");
    assert_eq!(view["unit-data"]["testredis/0"]["ingress-address"], addr.as_str());
    assert_eq!(view["application-data"]["leader-host"], addr.as_str());
    let hooks = m.hooks("testredis", 0);
    assert_eq!(
        hooks[hooks.len() - 3..],
        ["db-relation-created", "db-relation-joined", "db-relation-changed"].map(String::from)
    );
    // config-changed updates the relation through relation-ids/relation-set -r.
    m.ok(&["config", "testredis", "port=7002"]);
    let mj = m.model_json();
    assert_eq!(mj["relations"]["1"]["unit_data"]["testredis/0"]["port"], "7002");
    // A relation hook by hand, with the relation context inferred.
    m.ok(&["run-hook", "testredis/0", "db-relation-changed"]);
    // Removing the application runs departed/broken/stop/remove.
    m.ok(&["remove", "testredis"]);
    let st = m.status();
    assert!(st["applications"].as_object().is_some_and(|a| a.is_empty()));
}

#[test]
fn attach_resource_runs_upgrade_charm_and_resends_the_spec() {
    let m = TestModel::new("attach");
    let charm = build_charm(&m.work, &CharmOpts::default());
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0"]);
    m.wait_active("testredis");
    let pid_before = m.pod_pid("testredis-0");
    let image_file = m.work.join("image.yaml");
    std::fs::write(&image_file, "registrypath: registry.local/library/redis:7.2\nusername: u\npassword: p\n").unwrap();
    m.ok(&["attach-resource", "testredis", &format!("redis-image={}", image_file.display())]);
    let hooks = m.hooks("testredis", 0);
    assert_eq!(hooks[hooks.len() - 2..], ["upgrade-charm", "config-changed"].map(String::from));
    m.wait_active("testredis");
    let st = m.status();
    assert_eq!(st["applications"]["testredis"]["version"], "registry.local/library/redis:7.2");
    assert_ne!(m.pod_pid("testredis-0"), pid_before, "pod did not roll");
    let content = std::fs::read_to_string(m.dir.join("agents/unit-testredis-0/resources/content.yaml")).unwrap();
    assert!(content.contains("username: u") && content.contains("password: p"), "{content}");
    assert!(ping(&m.address("testredis/0"), 6379));
}

#[test]
fn storage_is_attached_after_start_and_actions_run_in_the_pod() {
    let m = TestModel::new("storage");
    let charm = build_charm(&m.work, &CharmOpts { storage: true, actions: true, ..Default::default() });
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0"]);
    m.wait_active("testredis");
    let hooks = m.hooks("testredis", 0);
    let start = hooks.iter().position(|h| h == "start").unwrap();
    let attached = hooks.iter().position(|h| h == "data-storage-attached").expect("storage-attached ran");
    assert!(attached > start, "{hooks:?}");
    assert_eq!(m.state_file("testredis", 0, "storage-location").as_deref(), Some("/var/lib/jl-test-data\n"));
    let out = m.ok(&["run-action", "testredis/0", "get-info"]);
    let v: serde_json::Value = serde_yaml::from_str(&out).unwrap();
    let r = &v["unit-testredis-0"];
    assert_eq!(r["status"], "completed", "{out}");
    assert_eq!(r["results"]["port"], "6379");
    assert_eq!(r["results"]["Stdout"], "in-pod-output\n");
    // The pod's kubelet-managed /etc/hosts names the pod itself, with its StatefulSet FQDN (the other
    // pods are in cluster DNS, as in Kubernetes).
    let hosts = std::fs::read_to_string(m.dir.join("pods/testredis-0/etc/hosts")).unwrap();
    let addr = m.address("testredis/0");
    assert!(
        hosts.contains(&format!("{addr}\ttestredis-0.testredis-endpoints.local.svc.cluster.local\ttestredis-0")),
        "{hosts}"
    );
}

#[test]
fn destroy_leaves_no_process_namespace_or_bridge() {
    let m = TestModel::alone("destroy");
    let charm = build_charm(&m.work, &CharmOpts::default());
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0", "-n", "2"]);
    m.wait_active("testredis");
    let mj = m.model_json();
    let mut pids = Vec::new();
    let mut namespaces = Vec::new();
    for pod in ["testredis-0", "testredis-1"] {
        let rec = m.pod(pod);
        pids.push(rec["containers"][0]["pid"].as_i64().unwrap_or(0));
        if let Some(ns) = rec["netns"].as_str() {
            namespaces.push(ns.to_string());
        }
    }
    let bridge = mj["network"]["bridge"].as_str().map(str::to_string);
    assert!(pids.iter().all(|p| alive(*p)));
    m.ok(&["destroy"]);
    for p in pids {
        assert!(!alive(p), "pid {p} survived destroy");
    }
    for ns in namespaces {
        assert!(!std::path::Path::new("/run/netns").join(&ns).exists(), "netns {ns} survived destroy");
    }
    if let Some(b) = bridge {
        assert!(!std::path::Path::new("/sys/class/net").join(&b).exists(), "bridge {b} survived destroy");
    }
    assert!(!m.dir.exists());
    let out = m.run(&["status"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("ERROR no model at"));
}
