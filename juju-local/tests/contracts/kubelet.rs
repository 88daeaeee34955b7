//! The kubelet daemon as Kubernetes behaves under Juju: a template change rolls a StatefulSet highest
//! ordinal first, one Ready pod at a time, and a pod that never becomes Ready stalls it; a
//! contents-only change reaches running pods' read-only files without restarting anything; a dead or
//! unhealthy container restarts in place with CrashLoopBackOff; deletion is SIGTERM to each PID 1,
//! then SIGKILL after the grace period; and none of it needs a juju-local command to run.

use crate::common::*;
use std::path::Path;

/// A StatefulSet spec for the test charm: `v` goes into the env (a template field), `content` into a
/// files set (ConfigMap data, not the template); the readiness probe is an exec probe that can only
/// pass inside the container (it reads the container's own mount).
fn spec(v: &str, content: &str, extra_container: &str, extra_top: &str) -> String {
    format!(
        "version: 3
containers:
- name: redis
  image: redis:7.0
  ports: [{{containerPort: $PORT, protocol: TCP, name: redis}}]
  command: [redis-server, --port, '$PORT', --bind, 0.0.0.0, --protected-mode, 'no', --save, '']
  envConfig: {{V: '{v}'}}
  volumeConfig:
  - name: conf
    mountPath: /etc/jl-test-conf
    files: [{{path: hello.txt, content: '{content}'}}]
{extra_container}  kubernetes:
    readinessProbe: {{exec: {{command: [sh, -c, 'test -f /etc/jl-test-conf/hello.txt && redis-cli -p $PORT ping']}}, periodSeconds: 1}}
{extra_top}"
    )
}

fn deploy(m: &TestModel, spec_text: &str, units: &str, extra: &[&str]) -> std::path::PathBuf {
    let spec_file = m.work.join("spec.yaml");
    std::fs::write(&spec_file, spec_text).unwrap();
    let charm =
        build_charm(&m.work, &CharmOpts { stateful: true, spec_file: Some(spec_file.clone()), ..Default::default() });
    let mut args = vec!["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0", "-n", units];
    args.extend_from_slice(extra);
    m.ok(&args);
    m.wait_active("testredis");
    spec_file
}

fn revision(m: &TestModel) -> String {
    m.k8s("testredis")["workload"]["revision"].as_str().unwrap_or_default().to_string()
}

/// The pod-level events (Killing, Deleted, SuccessfulCreate, Ready) of a rollout, in order.
fn rollout_events(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| {
            let mut w = l.split(' ');
            let reason = w.next().unwrap_or_default();
            let obj = w.next().unwrap_or_default();
            !obj.contains('/') && ["Killing", "Deleted", "SuccessfulCreate", "Ready"].contains(&reason)
        })
        .cloned()
        .collect()
}

/// findings §12 (StatefulSet RollingUpdate; `stateful_set_control.go` `updateStatefulSet`): a template
/// change deletes the highest ordinal first, recreates it, waits until it is Running and Ready (its
/// exec readiness probe passes inside the container), then the next; `wait` returns only once every
/// pod is on the new revision and Ready.
#[test]
fn a_template_change_rolls_highest_ordinal_first_one_ready_pod_at_a_time() {
    let m = TestModel::new("rollout");
    let spec_file = deploy(&m, &spec("1", "hello", "", ""), "3", &[]);
    let before = revision(&m);
    let mark = m.event_mark();
    m.set_spec(&spec_file, &spec("2", "hello", "", ""), "testredis/0");
    m.wait_active("testredis");
    let after = revision(&m);
    assert_ne!(before, after, "an env change is a template change");
    let mut want = Vec::new();
    for pod in ["testredis-2", "testredis-1", "testredis-0"] {
        for reason in ["Killing", "Deleted", "SuccessfulCreate", "Ready"] {
            want.push(format!("{reason} {pod}"));
        }
    }
    assert_eq!(rollout_events(&m.event_lines_since(mark)), want);
    let k = m.k8s("testredis");
    assert_eq!(k["rollout"], "complete");
    for p in k["pods"].as_array().unwrap() {
        assert_eq!(p["revision"], after.as_str(), "{p}");
        assert_eq!(p["ready"], true);
    }
    assert_eq!(k["workload"]["template"]["containers"][0]["env"]["V"], "2");
}

/// A pod that never becomes Ready stops the rollout (kubernetes.io "Forced rollback"): the recreated
/// highest pod stays not-Ready, the lower pods keep the old template, `wait` times out naming it; a
/// fixed template carries on.
#[test]
fn a_pod_that_never_becomes_ready_stalls_the_rollout() {
    let m = TestModel::new("stall");
    let spec_file = deploy(&m, &spec("1", "hello", "", ""), "2", &[]);
    let pid0 = m.pod_pid("testredis-0");
    let broken = spec("1", "hello", "", "").replace("test -f /etc/jl-test-conf/hello.txt", "test -f /nonexistent");
    std::fs::write(&spec_file, broken).unwrap();
    let mark = m.event_mark();
    m.ok(&["run-hook", "testredis/0", "config-changed"]);
    m.wait_for("testredis-1 to be recreated", || {
        m.event_lines_since(mark).contains(&"SuccessfulCreate testredis-1".to_string()).then_some(())
    });
    let out = m.run(&["wait", "testredis", "--timeout", "5"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rollout: pod testredis-1 is not ready"), "{err}");
    let lines = m.event_lines_since(mark);
    assert!(!lines.contains(&"Killing testredis-0".to_string()), "the rollout went past a not-Ready pod: {lines:?}");
    assert!(!lines.contains(&"Ready testredis-1".to_string()), "{lines:?}");
    assert_eq!(m.pod_pid("testredis-0"), pid0);
    assert_eq!(m.pod("testredis-1")["ready"], false);
    // Fixing the template lets the rollout finish.
    m.set_spec(&spec_file, &spec("3", "hello", "", ""), "testredis/0");
    m.wait_active("testredis");
    assert_ne!(m.pod_pid("testredis-0"), pid0);
}

/// findings §2 and §12: file contents are ConfigMap (and Secret) data, not the template, so nothing
/// restarts; after the kubelet's sync period the files change in the running pods, written the
/// AtomicWriter way (a `..data` symlink swap), and the volume is read-only in the container. A new pod
/// gets the current contents when it is created.
#[test]
fn a_contents_only_change_refreshes_files_without_restarting_anything() {
    let m = TestModel::new("contents");
    let secret = |pw: &str| {
        format!(
            "kubernetesResources:\n  secrets:\n  - name: auth\n    type: Opaque\n    stringData: {{password: '{pw}'}}\n"
        )
    };
    let secret_mount = "  - name: auth\n    mountPath: /etc/jl-test-auth\n    secret: {name: auth, defaultMode: 256}\n";
    let spec_file =
        deploy(&m, &spec("1", "hello", secret_mount, &secret("one")), "2", &["--kubelet-sync-seconds", "1"]);
    let rev = revision(&m);
    let pids = (m.pod_pid("testredis-0"), m.pod_pid("testredis-1"));
    let data_before = std::fs::read_link(m.dir.join("pods/testredis-0/volumes/testredis-conf-config/..data")).unwrap();
    let mark = m.event_mark();
    m.set_spec(&spec_file, &spec("1", "bonjour", secret_mount, &secret("two")), "testredis/0");
    m.wait_for("the new contents in both running pods", || {
        ["testredis-0", "testredis-1"]
            .iter()
            .all(|p| {
                m.exec_in_pod(p, 0, "cat /etc/jl-test-conf/hello.txt; echo; cat /etc/jl-test-auth/password").1
                    == "bonjour\ntwo"
            })
            .then_some(())
    });
    assert_eq!(revision(&m), rev, "contents changed the template");
    assert_eq!((m.pod_pid("testredis-0"), m.pod_pid("testredis-1")), pids, "a pod restarted");
    let lines = m.event_lines_since(mark);
    assert!(lines.iter().all(|l| !l.starts_with("Killing") && !l.starts_with("Started")), "{lines:?}");
    assert!(lines.contains(&"FilesUpdated testredis-0".to_string()), "{lines:?}");
    let data_after = std::fs::read_link(m.dir.join("pods/testredis-0/volumes/testredis-conf-config/..data")).unwrap();
    assert_ne!(data_before, data_after, "the ..data symlink was not swapped");
    assert_eq!(
        std::fs::read_link(m.dir.join("pods/testredis-0/volumes/testredis-conf-config/hello.txt")).unwrap(),
        Path::new("..data/hello.txt")
    );
    // Read-only inside the container, whatever the spec says; the Secret's defaultMode applies.
    let (code, out) = m.exec_in_pod("testredis-0", 0, "echo x > /etc/jl-test-conf/hello.txt");
    assert_ne!(code, 0);
    assert!(out.contains("Read-only file system"), "{out}");
    assert_eq!(m.exec_in_pod("testredis-0", 0, "stat -L -c %a /etc/jl-test-auth/password").1.trim(), "400");
    // A new pod starts with the current contents.
    m.ok(&["scale", "testredis", "3"]);
    m.wait_active("testredis");
    assert_eq!(m.exec_in_pod("testredis-2", 0, "cat /etc/jl-test-conf/hello.txt").1, "bonjour");
}

/// findings §12 (`kuberuntime_manager.go` `doBackOff`, client-go `flowcontrol/backoff.go`): a container
/// that exits restarts in place (same pod, IP and emptyDir; the other container untouched), the first
/// time at once, then after a CrashLoopBackOff of 10 s; a liveness probe failing failureThreshold times
/// restarts the container too.
#[test]
fn a_dead_or_unhealthy_container_restarts_in_place_with_crash_loop_back_off() {
    let m = TestModel::new("crashloop");
    let text = "version: 3
containers:
- name: redis
  image: redis:7.0
  ports: [{containerPort: $PORT, protocol: TCP, name: redis}]
  command: [sh, -c, 'rm -f /scratch/sick; exec redis-server --port $PORT --bind 0.0.0.0 --protected-mode no --save \"\"']
  volumeConfig:
  - name: scratch
    mountPath: /scratch
    emptyDir: {}
  kubernetes:
    readinessProbe: {tcpSocket: {port: $PORT}, periodSeconds: 1}
    livenessProbe: {exec: {command: [sh, -c, 'test ! -f /scratch/sick']}, periodSeconds: 1, failureThreshold: 2}
- name: sidecar
  image: redis:7.0
  command: [sh, -c, 'while :; do sleep 1; done']
";
    deploy(&m, text, "1", &[]);
    let pod = m.pod("testredis-0");
    let (uid, addr, sidecar_pid) =
        (pod["uid"].clone(), m.address("testredis/0"), pod["containers"][1]["pid"].as_i64().unwrap());
    m.exec_in_pod("testredis-0", 0, "echo kept > /scratch/keep");
    let mark = m.event_mark();
    // 1. The process dies: restarted at once.
    let pid = m.pod_pid("testredis-0");
    assert_eq!(std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().code(), Some(0));
    m.wait_for("the first restart", || (m.pod("testredis-0")["containers"][0]["restart_count"] == 1).then_some(()));
    let lines = m.event_lines_since(mark);
    assert!(!lines.iter().any(|l| l.starts_with("BackOff")), "the first restart waited: {lines:?}");
    // 2. Dies again: CrashLoopBackOff 10 s before the second restart.
    m.wait_for("the container to run", || (m.pod("testredis-0")["containers"][0]["state"] == "running").then_some(()));
    let pid = m.pod_pid("testredis-0");
    std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    m.wait_for("CrashLoopBackOff", || {
        (m.pod("testredis-0")["containers"][0]["reason"] == "CrashLoopBackOff").then_some(())
    });
    let backoff = m.events().into_iter().skip(mark).find(|e| e["reason"] == "BackOff").expect("BackOff event");
    assert!(backoff["message"].as_str().unwrap().starts_with("Back-off 10s restarting failed container=redis"));
    m.wait_for("the second restart", || (m.pod("testredis-0")["containers"][0]["restart_count"] == 2).then_some(()));
    // 3. Liveness: the probe fails twice, the kubelet kills and restarts the container.
    m.wait_for("the container to run", || (m.pod("testredis-0")["containers"][0]["state"] == "running").then_some(()));
    m.exec_in_pod("testredis-0", 0, "touch /scratch/sick");
    m.wait_for_secs("the liveness restart", 60, || {
        (m.pod("testredis-0")["containers"][0]["restart_count"] == 3).then_some(())
    });
    let lines = m.event_lines_since(mark);
    assert!(lines.contains(&"Unhealthy testredis-0/redis".to_string()), "{lines:?}");
    // The pod, its IP and its emptyDir survived; the sidecar never restarted.
    let pod = m.pod("testredis-0");
    assert_eq!(pod["uid"], uid);
    assert_eq!(m.address("testredis/0"), addr);
    assert_eq!(pod["containers"][1]["pid"].as_i64().unwrap(), sidecar_pid);
    assert_eq!(pod["containers"][1]["restart_count"], 0);
    assert!(!lines.iter().any(|l| l.starts_with("Deleted")), "{lines:?}");
    m.wait_for("the container to run", || (m.pod("testredis-0")["containers"][0]["state"] == "running").then_some(()));
    assert_eq!(m.exec_in_pod("testredis-0", 0, "cat /scratch/keep").1.trim(), "kept");
}

/// findings §12 ("Termination of Pods"): deletion sends SIGTERM to PID 1 of each container only (a
/// child of PID 1 does not get it), then SIGKILL to every process of the pod once
/// terminationGracePeriodSeconds (from kubernetesResources.pod) have passed.
#[test]
fn deletion_sigterms_pid_1_only_then_sigkills_every_process_after_the_grace_period() {
    let m = TestModel::new("grace");
    let record = m.work.join("record");
    std::fs::create_dir_all(&record).unwrap();
    let rec =
        format!("  - name: record\n    mountPath: /jl-test-record\n    hostPath: {{path: {}}}\n", record.display());
    let script = "trap \"echo pid1-got-TERM-$HOSTNAME >> /jl-test-record/log\" TERM; \
                  (trap \"echo child-got-TERM-$HOSTNAME >> /jl-test-record/log\" TERM; while :; do sleep 0.2; done) & \
                  redis-server --port $PORT --bind 0.0.0.0 --protected-mode no --save \"\" & \
                  while :; do sleep 0.2; done";
    let text = spec("1", "hello", &rec, "kubernetesResources:\n  pod:\n    terminationGracePeriodSeconds: 3\n")
        .replace(
            "command: [redis-server, --port, '$PORT', --bind, 0.0.0.0, --protected-mode, 'no', --save, '']",
            &format!("command: [sh, -c, '{script}']"),
        );
    deploy(&m, &text, "2", &[]);
    let pid1 = m.pod_pid("testredis-1");
    let pid_ns = std::fs::read_link(format!("/proc/{pid1}/ns/pid")).unwrap().to_string_lossy().to_string();
    assert_eq!(m.pod("testredis-1")["grace_seconds"], 3);
    let mark = m.event_mark();
    m.ok(&["scale", "testredis", "1"]);
    m.wait_for("the pod to be deleted", || m.pod("testredis-1").is_null().then_some(()));
    assert!(!alive(pid1), "PID 1 survived");
    let log = std::fs::read_to_string(record.join("log")).unwrap_or_default();
    assert!(log.contains("pid1-got-TERM-testredis-1"), "PID 1 did not get SIGTERM: {log:?}");
    assert!(!log.contains("child-got-TERM"), "SIGTERM reached a child of PID 1: {log:?}");
    let lines = m.event_lines_since(mark);
    let pos = |s: &str| lines.iter().position(|l| l == s).unwrap_or_else(|| panic!("no {s:?} in {lines:?}"));
    assert!(pos("Killing testredis-1") < pos("Deleted testredis-1"));
    let kill = m.events().into_iter().skip(mark).rfind(|e| e["reason"] == "Killing" && e["pod"] == "testredis-1");
    assert!(kill.unwrap()["message"].as_str().unwrap().contains("SIGKILL"), "no SIGKILL after the grace period");
    // PID 1 ignored the SIGTERM (its trap only logs): SIGKILL took every process of its PID namespace.
    let left = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_link(e.path().join("ns/pid")).is_ok_and(|l| l.to_string_lossy() == pid_ns))
        .count();
    assert_eq!(left, 0, "a process of the deleted pod survived");
}
