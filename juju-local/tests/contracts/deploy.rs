//! Deploy, config and scale: a test charm's Redis answers at its pod address, follows the port
//! option, refuses bad config like the controller does, and two units get two pods.

use crate::common::*;
use std::process::Command;

#[test]
fn deploy_answers_pong_and_follows_the_port_option() {
    let m = TestModel::new("deploy");
    let charm = build_charm(&m.work, &CharmOpts::default());
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0"]);
    m.wait_active("testredis");
    let addr = m.address("testredis/0");
    assert!(addr.starts_with("10.201.") || addr.starts_with("127.201."), "{addr}");
    assert!(ping(&addr, 6379), "no PONG at {addr}:6379");
    assert_eq!(
        m.hooks("testredis", 0),
        ["install", "cluster-relation-created", "leader-elected", "config-changed", "start", "update-status"],
        "deploy hook order"
    );
    let st = m.status();
    assert_eq!(st["applications"]["testredis"]["application-status"]["current"], "active");
    assert_eq!(st["applications"]["testredis"]["version"], "redis:7.0");
    assert_eq!(TestModel::unit(&st, "testredis/0")["open-ports"][0], "6379/TCP");

    m.ok(&["config", "testredis", "port=7000"]);
    m.wait_active("testredis");
    m.wait_for("PONG on 7000", || ping(&addr, 7000).then_some(()));
    assert!(!ping(&addr, 6379), "old port still answers");
    assert_eq!(m.ok(&["config", "testredis", "port"]).trim(), "7000");

    // Type checking happens on the "controller": nothing stored, no hook.
    let before = m.hooks("testredis", 0).len();
    let out = m.run(&["config", "testredis", "port=abc"]);
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "ERROR option \"port\" expected int, got \"abc\"\n");
    let out = m.run(&["config", "testredis", "nope=1"]);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "ERROR unknown option \"nope\"\n");
    // An unchanged value warns and runs no hook.
    let out = m.run(&["config", "testredis", "port=7000"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already has the value"));
    assert_eq!(m.hooks("testredis", 0).len(), before, "a hook ran for a refused or unchanged config");
    assert_eq!(m.ok(&["config", "testredis", "port"]).trim(), "7000");
    // --reset restores the default and runs config-changed.
    m.ok(&["config", "testredis", "--reset", "port"]);
    assert_eq!(m.hooks("testredis", 0).last().map(String::as_str), Some("config-changed"));
    m.wait_active("testredis");
    m.wait_for("PONG on 6379 again", || ping(&addr, 6379).then_some(()));
    let shown: serde_json::Value = serde_yaml::from_str(&m.ok(&["config", "testredis"])).unwrap();
    assert_eq!(shown["settings"]["port"]["source"], "default");
}

#[test]
fn two_units_get_two_pods_and_only_unit_0_leads() {
    let m = TestModel::new("scale");
    let charm = build_charm(&m.work, &CharmOpts::default());
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0", "-n", "2"]);
    m.wait_active("testredis");
    let (a0, a1) = (m.address("testredis/0"), m.address("testredis/1"));
    assert_ne!(a0, a1);
    let st = m.status();
    assert_eq!(TestModel::unit(&st, "testredis/0")["leader"], true);
    assert_eq!(TestModel::unit(&st, "testredis/1")["leader"], false);
    if st["model"]["network"] == "netns" {
        assert!(ping(&a0, 6379) && ping(&a1, 6379), "both pods answer on the same port");
    }
    assert_eq!(
        m.hooks("testredis", 1)[..3],
        ["install", "cluster-relation-created", "leader-settings-changed"].map(String::from)
    );
    // Peers: each unit saw the other join.
    assert!(m.hooks("testredis", 0).contains(&"cluster-relation-joined".to_string()));
    assert!(m.hooks("testredis", 1).contains(&"cluster-relation-joined".to_string()));
    let peers = &m.model_json()["relations"]["0"]["joined"];
    assert_eq!(peers["testredis/0"][0], "testredis/1");
    assert_eq!(peers["testredis/1"][0], "testredis/0");
    assert_eq!(m.state_file("testredis", 1, "nonleader-err").as_deref(), Some("ERROR this unit is not the leader\n"));

    // Scale down removes the highest unit with its hooks; its pod is deleted (redis-server exits on the
    // SIGTERM, in the background: the kubelet owns the pod now, so wait for it).
    let pid1 = m.pod_pid("testredis-1");
    assert!(pid1 > 0);
    m.ok(&["scale", "testredis", "1"]);
    m.wait_for("the removed unit's pod to stop", || (!alive(pid1)).then_some(()));
    assert_eq!(m.hooks("testredis", 0).last().map(String::as_str), Some("cluster-relation-departed"));
    let st = m.status();
    assert_eq!(st["applications"]["testredis"]["scale"], 1);
    assert!(ping(&a0, 6379));
}

#[test]
fn removing_the_leader_elects_the_lowest_remaining_unit() {
    let m = TestModel::new("leader");
    let charm = build_charm(&m.work, &CharmOpts::default());
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0", "-n", "3"]);
    m.ok(&["remove-unit", "testredis/0"]);
    let st = m.status();
    assert_eq!(TestModel::unit(&st, "testredis/1")["leader"], true);
    assert_eq!(TestModel::unit(&st, "testredis/2")["leader"], false);
    assert_eq!(m.hooks("testredis", 1).last().map(String::as_str), Some("leader-elected"));
    assert!(st["applications"]["testredis"]["units"]["testredis/0"].is_null());
}

/// The kubelet is a daemon now: a container that dies is restarted in place with no juju-local
/// command running (it used to wait for the next command's reconcile).
#[test]
fn a_dead_container_is_restarted_in_place_without_any_command() {
    let m = TestModel::new("restart");
    let charm = build_charm(&m.work, &CharmOpts::default());
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0"]);
    m.wait_active("testredis");
    let addr = m.address("testredis/0");
    let out = Command::new("redis-cli").args(["-h", &addr, "-p", "6379", "SHUTDOWN", "NOSAVE"]).output();
    assert!(out.is_ok());
    m.wait_for("the container to be restarted", || {
        (m.pod("testredis-0")["containers"][0]["restart_count"] == 1 && ping(&addr, 6379)).then_some(())
    });
    assert_eq!(m.pod("testredis-0")["restarts"], 1);
    m.wait_active("testredis");
}

#[test]
fn without_namespaces_pods_get_loopback_addresses() {
    let mut m = TestModel::new("loopback");
    m.env.push(("JUJU_LOCAL_NO_NETNS".into(), "1".into()));
    let charm = build_charm(&m.work, &CharmOpts::default());
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0", "--config", "port=7390"]);
    m.wait_active("testredis");
    let addr = m.address("testredis/0");
    assert!(addr.starts_with("127.201."), "{addr}");
    assert!(ping(&addr, 7390));
    let table = m.ok(&["status"]);
    assert!(table.contains("No network namespaces (disabled by JUJU_LOCAL_NO_NETNS)"), "{table}");
}
