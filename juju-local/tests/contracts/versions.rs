//! The Juju version switch (`deploy --juju-version`): which fields of an existing StatefulSet Juju
//! updates (findings §3, `ensureStatefulSet`), and what Kubernetes makes of the result. Before 2.9.30
//! the template's volumes are never updated: a container mounting a new volume is refused by the API
//! server, which Juju shows as the operator status `error` while deleting the headless Service; and a
//! file added to a `files` set never reaches a pod. Template labels and `kubernetesResources.pod`
//! fields other than annotations are ignored after the first deploy in every version.

use crate::common::*;

/// A StatefulSet spec; `files` is the files set's list, `extra` more volumeConfig entries, `top` more
/// top-level keys.
fn spec(files: &str, extra: &str, top: &str) -> String {
    format!(
        "version: 3
containers:
- name: redis
  image: redis:7.0
  ports: [{{containerPort: $PORT, protocol: TCP, name: redis}}]
  command: [redis-server, --port, '$PORT', --bind, 0.0.0.0, --protected-mode, 'no', --save, '']
  volumeConfig:
  - name: conf
    mountPath: /etc/jl-test-conf
    files: {files}
{extra}  kubernetes:
    readinessProbe: {{tcpSocket: {{port: $PORT}}, periodSeconds: 1}}
{top}"
    )
}

const ONE_FILE: &str = "[{path: hello.txt, content: hello}]";
const NEW_VOLUME: &str = "  - name: extra\n    mountPath: /jl-test-extra\n    emptyDir: {}\n";

/// Deploys the stateful test charm with `spec_text` as Juju `version`; its update-status hook records
/// JUJU_VERSION and whether the pod's headless-Service name resolves from the operator pod.
fn deploy(m: &TestModel, version: &str, spec_text: &str, units: &str) -> std::path::PathBuf {
    let spec_file = m.work.join("spec.yaml");
    std::fs::write(&spec_file, spec_text).unwrap();
    let arm = r#"  update-status)
    echo "$JUJU_VERSION" > "$STATE/juju-version"
    getent hosts testredis-0.testredis-endpoints > "$STATE/dns" || echo unresolved > "$STATE/dns" ;;"#;
    let opts =
        CharmOpts { stateful: true, spec_file: Some(spec_file.clone()), extra_case: arm.into(), ..Default::default() };
    let charm = build_charm(&m.work, &opts);
    m.ok(&[
        "deploy",
        charm.to_str().unwrap(),
        "--resource",
        "redis-image=redis:7.0",
        "-n",
        units,
        "--juju-version",
        version,
        "--kubelet-sync-seconds",
        "1",
    ]);
    m.wait_active("testredis");
    spec_file
}

fn app_status(m: &TestModel) -> (String, String) {
    let st = m.status();
    let s = &st["applications"]["testredis"]["application-status"];
    (s["current"].as_str().unwrap_or("").into(), s["message"].as_str().unwrap_or("").into())
}

fn dns_from_hook(m: &TestModel) -> String {
    m.ok(&["run-hook", "testredis/0", "update-status"]);
    m.state_file("testredis", 0, "dns").unwrap_or_default()
}

/// Before 2.9.30 (`ensureStatefulSet` copies containers but not volumes; 7d39368824 is first in
/// juju-2.9.30): a spec whose container mounts a new volume makes an invalid StatefulSet; Juju reports
/// `creating or updating StatefulSet: stateful set "<app>" not valid` as the application's status
/// (the Kubernetes text is dropped, `updateStatefulSet`), deletes the headless Service in its cleanup
/// (k8s.go `ensureService`) so `<pod>.<app>-endpoints` stops resolving, and the pods keep the old
/// template. The hook itself succeeded. ConfigMaps written before the StatefulSet are updated anyway.
#[test]
fn before_2_9_30_a_mount_of_a_new_volume_is_refused_and_the_headless_service_goes() {
    let m = TestModel::new("v2929");
    let spec_file = deploy(&m, "2.9.29", &spec(ONE_FILE, "", ""), "2");
    assert_eq!(m.state_file("testredis", 0, "juju-version").as_deref(), Some("2.9.29\n"));
    assert!(dns_from_hook(&m).contains("testredis-0.testredis-endpoints.local.svc.cluster.local"));
    let pids = (m.pod_pid("testredis-0"), m.pod_pid("testredis-1"));
    let rev = m.k8s("testredis")["workload"]["revision"].clone();
    let mark = m.event_mark();
    m.set_spec(&spec_file, &spec("[{path: hello.txt, content: changed}]", NEW_VOLUME, ""), "testredis/0");
    assert_eq!(
        app_status(&m),
        ("error".into(), "creating or updating StatefulSet: stateful set \"testredis\" not valid".into())
    );
    assert_eq!(TestModel::unit(&m.status(), "testredis/0")["juju-status"]["current"], "idle", "the hook did not fail");
    let k = m.k8s("testredis");
    assert_eq!(k["services"], serde_json::json!(["testredis"]), "the headless Service is still there");
    assert_eq!(k["workload"]["revision"], rev, "the live template changed");
    // Cluster DNS follows the Service's deletion (asynchronously, as CoreDNS watches it).
    m.wait_for("the pod's headless-Service name to stop resolving", || {
        (dns_from_hook(&m) == "unresolved\n").then_some(())
    });
    // The ConfigMap was updated before the refused StatefulSet: running pods see the new contents.
    m.wait_for("the new contents", || {
        (m.exec_in_pod("testredis-0", 0, "cat /etc/jl-test-conf/hello.txt").1 == "changed").then_some(())
    });
    assert_eq!((m.pod_pid("testredis-0"), m.pod_pid("testredis-1")), pids, "a pod restarted");
    let lines = m.event_lines_since(mark);
    assert!(!lines.iter().any(|l| l.starts_with("Killing")), "{lines:?}");
    // Retried until the spec changes: a spec without the mount is accepted again.
    m.set_spec(&spec_file, &spec("[{path: hello.txt, content: changed}]", "", ""), "testredis/0");
    assert_eq!(app_status(&m).0, "active");
    assert_eq!(m.k8s("testredis")["services"], serde_json::json!(["testredis", "testredis-endpoints"]));
    m.wait_for("the name to resolve again", || {
        dns_from_hook(&m).contains("testredis-0.testredis-endpoints").then_some(())
    });
}

/// From 2.9.30 the volumes are copied too: the same change is accepted and rolls the pods.
#[test]
fn from_2_9_30_a_new_volume_is_accepted_and_rolls_the_pods() {
    let m = TestModel::new("v2931");
    let spec_file = deploy(&m, "2.9.31", &spec(ONE_FILE, "", ""), "1");
    assert_eq!(m.state_file("testredis", 0, "juju-version").as_deref(), Some("2.9.31\n"));
    let pid = m.pod_pid("testredis-0");
    m.set_spec(&spec_file, &spec(ONE_FILE, NEW_VOLUME, ""), "testredis/0");
    m.wait_active("testredis");
    assert_eq!(app_status(&m).0, "active");
    assert_ne!(m.pod_pid("testredis-0"), pid, "the pod did not roll");
    assert_eq!(m.exec_in_pod("testredis-0", 0, "test -d /jl-test-extra && echo yes").1.trim(), "yes");
}

/// findings §2: a file added to a `files` set reaches the ConfigMap, but before 2.9.30 the volume's
/// `items` (the template) keep the old list, so the file never appears in a pod, running or new; from
/// 2.9.30 the items are a template change and the pods roll with it.
#[test]
fn a_file_added_to_a_files_set_reaches_pods_only_from_2_9_30() {
    let two = "[{path: hello.txt, content: changed}, {path: extra.txt, content: extra}]";
    for (version, appears) in [("2.9.29", false), ("2.9.30", true)] {
        let m = TestModel::new(&format!("files-{version}"));
        let spec_file = deploy(&m, version, &spec(ONE_FILE, "", ""), "1");
        m.set_spec(&spec_file, &spec(two, "", ""), "testredis/0");
        m.wait_active("testredis");
        // A sync happened after the change once hello.txt shows it.
        m.wait_for("the changed file", || {
            (m.exec_in_pod("testredis-0", 0, "cat /etc/jl-test-conf/hello.txt").1 == "changed").then_some(())
        });
        let ls = m.exec_in_pod("testredis-0", 0, "ls /etc/jl-test-conf").1;
        assert_eq!(ls.contains("extra.txt"), appears, "Juju {version}: {ls}");
        assert!(m.k8s("testredis")["config-maps"]["testredis-conf-config"].to_string().contains("extra.txt"));
        if !appears {
            // A new pod is made from the same stale template: still no file.
            m.ok(&["scale", "testredis", "2"]);
            m.wait_active("testredis");
            assert!(!m.exec_in_pod("testredis-1", 0, "ls /etc/jl-test-conf").1.contains("extra.txt"));
        }
    }
}

/// findings §3, §9: template labels and every `kubernetesResources.pod` field but annotations are set
/// when the StatefulSet is created and silently ignored afterwards (no roll, the live template keeps
/// them); pod annotations are copied (2.8.2+) and roll the pods. Before 2.8.7 the strict decoder refuses
/// `labels` outright.
#[test]
fn pod_fields_and_labels_are_fixed_at_creation_but_annotations_roll() {
    let m = TestModel::new("podfields");
    let pod = |grace: u32, label: &str, ann: &str| {
        format!(
            "kubernetesResources:\n  pod:\n    terminationGracePeriodSeconds: {grace}\n    labels: {{team: {label}}}\n    annotations: {{note: {ann}}}\n"
        )
    };
    let spec_file = deploy(&m, "2.9.31", &spec(ONE_FILE, "", &pod(5, "a", "x")), "1");
    let k = m.k8s("testredis");
    let rev = k["workload"]["revision"].clone();
    assert_eq!(k["workload"]["template"]["pod"]["terminationGracePeriodSeconds"], 5);
    assert_eq!(m.pod("testredis-0")["grace_seconds"], 5);
    m.set_spec(&spec_file, &spec(ONE_FILE, "", &pod(9, "b", "x")), "testredis/0");
    let k = m.k8s("testredis");
    assert_eq!(app_status(&m).0, "active");
    assert_eq!(k["workload"]["revision"], rev, "an ignored field changed the template");
    assert_eq!(k["workload"]["template"]["pod"]["terminationGracePeriodSeconds"], 5);
    assert_eq!(k["workload"]["template"]["labels"]["team"], "a");
    let pid = m.pod_pid("testredis-0");
    m.set_spec(&spec_file, &spec(ONE_FILE, "", &pod(9, "b", "y")), "testredis/0");
    m.wait_active("testredis");
    assert_eq!(m.k8s("testredis")["workload"]["template"]["annotations"]["note"], "y");
    assert_ne!(m.pod_pid("testredis-0"), pid, "an annotation change did not roll the pod");
    assert_eq!(m.pod("testredis-0")["grace_seconds"], 5, "the grace period is the live template's");

    let old = TestModel::new("podfields-287");
    let spec_file = old.work.join("spec.yaml");
    std::fs::write(&spec_file, spec(ONE_FILE, "", &pod(5, "a", "x"))).unwrap();
    let opts = CharmOpts { stateful: true, spec_file: Some(spec_file), ..Default::default() };
    let charm = build_charm(&old.work, &opts);
    old.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0", "--juju-version", "2.8.6"]);
    let st = old.status();
    assert_eq!(TestModel::unit(&st, "testredis/0")["juju-status"]["message"], "hook failed: \"config-changed\"");
    assert!(old.debug_log().contains("ERROR json: unknown field \"labels\""), "{}", old.debug_log());
}

/// findings §3 and §7: while the StatefulSet update is refused, a scale-down cannot lower `replicas`
/// either (EnsureService sends the whole spec), so the surplus pod is not deleted and its unit does not
/// depart; once a spec is accepted, replicas go down, the pod is marked for deletion and the unit's
/// departure hooks run.
#[test]
fn a_scale_down_waits_while_the_statefulset_update_is_refused() {
    let m = TestModel::new("v2929-scale");
    let spec_file = deploy(&m, "2.9.29", &spec(ONE_FILE, "", ""), "2");
    m.set_spec(&spec_file, &spec(ONE_FILE, NEW_VOLUME, ""), "testredis/0");
    assert_eq!(app_status(&m).0, "error");
    let pid1 = m.pod_pid("testredis-1");
    let out = m.run(&["scale", "testredis", "1"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Kubernetes refused the update"));
    assert_eq!(m.k8s("testredis")["workload"]["replicas"], 2);
    assert!(alive(pid1) && m.pod("testredis-1")["deletion_ms"].is_null(), "the surplus pod was deleted");
    assert!(!m.hooks("testredis", 1).contains(&"stop".to_string()));
    m.set_spec(&spec_file, &spec(ONE_FILE, "", ""), "testredis/0");
    assert_eq!(app_status(&m).0, "active");
    assert_eq!(m.k8s("testredis")["workload"]["replicas"], 1);
    assert!(m.status()["applications"]["testredis"]["units"]["testredis/1"].is_null(), "the unit did not depart");
    m.wait_for("the surplus pod to go", || m.pod("testredis-1").is_null().then_some(()));
}
