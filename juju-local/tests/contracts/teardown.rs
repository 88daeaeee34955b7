//! Pods going away: scale-down marks the surplus pods for deletion (SIGTERM) before any hook of the
//! departing units runs, and those hooks follow Juju's Dying order; `destroy` leaves nothing behind even
//! when redis-server refuses to exit on SIGTERM; and the kubelet tears a model down by itself when its
//! model dir is deleted.

use crate::common::*;
use std::path::Path;

const STATEFUL_SPEC: &str = "version: 3
containers:
- name: redis
  image: redis:7.0
  ports: [{containerPort: $PORT, protocol: TCP, name: redis}]
  command: COMMAND
  volumeConfig:
  - name: conf
    mountPath: /etc/jl-test-conf
    files: [{path: hello.txt, content: hello}]
EXTRA  kubernetes:
    readinessProbe: {tcpSocket: {port: $PORT}, periodSeconds: 1}
TOP";

fn processes_in_netns(ns: &str) -> usize {
    std::process::Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().count())
        .unwrap_or(0)
}

/// findings §7 (`caasunitprovisioner` `updateUnitsFromCloud`, `uniter/resolver.go` Dying,
/// `relation/resolver.go`): lowering the scale lowers the StatefulSet's replicas, Kubernetes marks the
/// highest pods (all at once, Parallel) for deletion and SIGTERMs them, and only then does Juju make
/// their units Dying. Each departing unit runs `-relation-departed` for every remote unit of every
/// relation with JUJU_DEPARTING_UNIT = itself, `-relation-broken` for the non-peer relation only, then
/// `stop` and `remove`, while its pod may still be in its grace period; the remaining unit runs
/// `<peer>-relation-departed` with JUJU_DEPARTING_UNIT = the departing unit.
#[test]
fn scale_down_sigterms_the_pods_before_the_departing_units_hooks() {
    let m = TestModel::new("scaledown");
    let record = m.work.join("record");
    std::fs::create_dir_all(&record).unwrap();
    let rec = record.display().to_string();
    let spec_file = m.work.join("spec.yaml");
    // PID 1 records the SIGTERM and keeps running: the pod stays in its 30 s grace period.
    let command = "[sh, -c, 'trap \"touch /jl-test-record/$HOSTNAME-term\" TERM; redis-server --port $PORT --bind 0.0.0.0 --protected-mode no --save \"\" & while :; do sleep 0.2; done']";
    let extra = format!("  - name: record\n    mountPath: /jl-test-record\n    hostPath: {{path: {rec}}}\n");
    let spec = STATEFUL_SPEC.replace("COMMAND", command).replace("EXTRA", &extra).replace("TOP", "");
    std::fs::write(&spec_file, spec).unwrap();
    let arm = format!(
        r#"  cluster-relation-departed|cluster-relation-broken|db-relation-departed|db-relation-broken|stop|remove)
    POD="testredis-${{JUJU_UNIT_NAME#*/}}"
    # PID 1's trap runs once its current sleep ends: give a delivered SIGTERM a moment to show.
    T=no; i=0; [ "$POD" != testredis-0 ] || i=50
    while [ $i -lt 50 ]; do if [ -f "{rec}/$POD-term" ]; then T=yes; break; fi; i=$((i+1)); sleep 0.1; done
    echo "$hook remote=${{JUJU_REMOTE_UNIT-}} departing=${{JUJU_DEPARTING_UNIT-}} sigterm-before=$T" >> "{rec}/hooks-$POD.log" ;;"#
    );
    let opts = CharmOpts { stateful: true, spec_file: Some(spec_file), extra_case: arm, ..Default::default() };
    let charm = build_charm(&m.work, &opts);
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0", "-n", "3"]);
    m.ok(&["relate", "testredis", "client"]);
    m.wait_active("testredis");
    let mark = m.event_mark();
    m.ok(&["scale", "testredis", "1"]);
    let read = |pod: &str| -> Vec<String> {
        std::fs::read_to_string(record.join(format!("hooks-{pod}.log")))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        read("testredis-1"),
        [
            "cluster-relation-departed remote=testredis/0 departing=testredis/1 sigterm-before=yes",
            "cluster-relation-departed remote=testredis/2 departing=testredis/1 sigterm-before=yes",
            "db-relation-departed remote=client/0 departing=testredis/1 sigterm-before=yes",
            "db-relation-broken remote= departing= sigterm-before=yes",
            "stop remote= departing= sigterm-before=yes",
            "remove remote= departing= sigterm-before=yes",
        ]
    );
    let two = read("testredis-2");
    assert_eq!(
        two.first().map(String::as_str),
        Some("cluster-relation-departed remote=testredis/0 departing=testredis/2 sigterm-before=yes")
    );
    assert!(two.iter().all(|l| l.ends_with("sigterm-before=yes")), "{two:?}");
    assert!(!two.iter().any(|l| l.starts_with("cluster-relation-broken")), "a peer relation is never broken: {two:?}");
    assert_eq!(
        read("testredis-0"),
        [
            "cluster-relation-departed remote=testredis/1 departing=testredis/1 sigterm-before=no",
            "cluster-relation-departed remote=testredis/2 departing=testredis/2 sigterm-before=no",
        ]
    );
    // Both surplus pods were marked for deletion together, before any hook, and are still in their
    // grace period now that the hooks have run.
    let lines = m.event_lines_since(mark);
    let kills: Vec<&String> =
        lines.iter().filter(|l| *l == "Killing testredis-1" || *l == "Killing testredis-2").collect();
    assert_eq!(kills.len(), 2, "{lines:?}");
    for pod in ["testredis-1", "testredis-2"] {
        let p = m.pod(pod);
        assert!(!p["deletion_ms"].is_null(), "{pod} is not terminating: {p}");
        assert!(alive(m.pod_pid(pod)), "{pod}'s PID 1 is gone before its grace period ended");
    }
    assert_eq!(m.status()["applications"]["testredis"]["scale"], 1);
}

/// `destroy` with a redis-server (the real one, the redis image's emulation) that refuses to exit on
/// SIGTERM because its final save fails: deletion waits out the grace period and SIGKILLs it; destroy
/// kills the rest at once; no process, network namespace, veth or bridge of the model is left.
#[test]
fn destroy_leaves_nothing_behind_even_when_redis_refuses_sigterm() {
    let m = TestModel::alone("stubborn");
    let spec_file = m.work.join("spec.yaml");
    // Its data dir is the read-only ConfigMap volume: the shutdown save fails and Redis stays up.
    let command = "[redis-server, --port, '$PORT', --bind, 0.0.0.0, --protected-mode, 'no', --dir, /etc/jl-test-conf, --save, '3600 1']";
    let top = "kubernetesResources:\n  pod:\n    terminationGracePeriodSeconds: 2\n";
    let spec = STATEFUL_SPEC.replace("COMMAND", command).replace("EXTRA", "").replace("TOP", top);
    std::fs::write(&spec_file, spec).unwrap();
    let opts = CharmOpts { stateful: true, spec_file: Some(spec_file), ..Default::default() };
    let charm = build_charm(&m.work, &opts);
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0", "-n", "2"]);
    m.wait_active("testredis");
    // Deleting a pod: SIGTERM is refused, SIGKILL after the grace period ends it.
    let pid1 = m.pod_pid("testredis-1");
    m.ok(&["scale", "testredis", "1"]);
    m.wait_for("the refusing pod to be deleted", || m.pod("testredis-1").is_null().then_some(()));
    assert!(!alive(pid1));
    let log = std::fs::read_to_string(m.dir.join("pods/testredis-1/logs/redis.log")).unwrap();
    assert!(log.contains("Error trying to save the DB, can't exit"), "redis did not refuse SIGTERM:\n{log}");
    let killed = m.events().into_iter().any(|e| {
        e["pod"] == "testredis-1" && e["reason"] == "Killing" && e["message"].as_str().unwrap_or("").contains("SIGKILL")
    });
    assert!(killed, "no SIGKILL after the grace period");
    // destroy with one such pod still running.
    let pod = m.pod("testredis-0");
    let pid0 = pod["containers"][0]["pid"].as_i64().unwrap();
    let ns = pod["netns"].as_str().map(str::to_string);
    let mj = m.model_json();
    let bridge = mj["network"]["bridge"].as_str().map(str::to_string);
    let index = mj["network"]["index"].as_u64().unwrap();
    let daemon: i64 = std::fs::read_to_string(m.dir.join("kubelet/kubelet.pid")).unwrap().trim().parse().unwrap();
    assert!(alive(pid0) && alive(daemon));
    m.ok(&["destroy"]);
    assert!(!alive(pid0), "redis-server survived destroy");
    assert!(!alive(daemon), "the kubelet survived destroy");
    if let Some(ns) = ns {
        assert!(!Path::new("/run/netns").join(&ns).exists(), "netns {ns} survived destroy");
        assert_eq!(processes_in_netns(&ns), 0);
    }
    let links =
        String::from_utf8_lossy(&std::process::Command::new("ip").args(["-br", "link"]).output().unwrap().stdout)
            .to_string();
    assert!(!links.lines().any(|l| l.starts_with(&format!("jl{index}v"))), "a veth survived destroy:\n{links}");
    if let Some(b) = bridge {
        assert!(!Path::new("/sys/class/net").join(&b).exists(), "bridge {b} survived destroy");
    }
    assert!(!Path::new(&format!("/run/juju-local/index-{index}")).exists());
    assert!(!m.dir.exists());
}

/// The kubelet daemon exits by itself when its model dir disappears (a test harness that removed it
/// without `destroy`), killing its pods and removing their namespaces and the model's bridge: what a
/// deleted model dir used to leak (redis-server processes with their netns and model dir gone).
#[test]
fn the_kubelet_tears_the_model_down_when_its_dir_is_deleted() {
    let m = TestModel::alone("rmdir");
    let charm = build_charm(&m.work, &CharmOpts { stateful: true, ..Default::default() });
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0"]);
    m.wait_active("testredis");
    let pod = m.pod("testredis-0");
    let pid = pod["containers"][0]["pid"].as_i64().unwrap();
    let ns = pod["netns"].as_str().map(str::to_string);
    let bridge = m.model_json()["network"]["bridge"].as_str().map(str::to_string);
    let daemon: i64 = std::fs::read_to_string(m.dir.join("kubelet/kubelet.pid")).unwrap().trim().parse().unwrap();
    std::fs::remove_dir_all(&m.dir).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline && (alive(daemon) || alive(pid)) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!alive(pid), "the pod outlived its model dir");
    assert!(!alive(daemon), "the kubelet outlived its model dir");
    if let Some(ns) = ns {
        assert!(!Path::new("/run/netns").join(&ns).exists(), "netns {ns} outlived the model dir");
    }
    if let Some(b) = bridge {
        assert!(!Path::new("/sys/class/net").join(&b).exists(), "bridge {b} outlived the model dir");
    }
}
