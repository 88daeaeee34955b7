//! Sidecar (format v2) charms, as Juju 3.1-4.0 runs them (juju-local `src/sidecar.rs` lists the rules and
//! their sources): how the format is told and what is refused; the StatefulSet, its `charm` container and one
//! Pebble container per metadata container; hooks and actions in the charm container, with every workload
//! container's Pebble socket at `/charm/containers/<name>/pebble.socket`; the hook order with
//! `<container>-pebble-ready`, again after a container restart; the status the charm sets; the hook tools
//! Juju 4.0 no longer has.

use crate::common::*;
use std::io::Write;
use std::path::PathBuf;

const SIDE_META: &str = "name: testside\nsummary: test\ndescription: test\nassumes: [k8s-api]\n\
containers:\n  app:\n    resource: app-image\n    mounts:\n      - storage: data\n        location: /jl-side-data\n  other:\n    resource: app-image\n\
resources:\n  app-image:\n    type: oci-image\n    description: image\n\
peers:\n  cluster:\n    interface: testpeer\n\
storage:\n  data:\n    type: filesystem\n";
const MANIFEST: &str = "bases:\n  - name: ubuntu\n    channel: \"22.04\"\n    architectures: [amd64]\n";

/// A sidecar test charm: every hook logs what it sees with juju-log (the charm dir is the pod's copy, so
/// nothing is written beside it).
const SIDE_DISPATCH: &str = r#"#!/bin/sh
hook="${JUJU_DISPATCH_PATH#*/}"
case "$hook" in
  install)
    juju-log "tools: $(command -v pod-spec-set >/dev/null && echo pod-spec-set) $(command -v leader-get >/dev/null && echo leader-get) $(command -v leader-set >/dev/null && echo leader-set) $(command -v k8s-spec-set >/dev/null && echo k8s-spec-set) $(command -v is-leader >/dev/null && echo is-leader)"
    juju-log "where: host=$(hostname) dir=$JUJU_CHARM_DIR pwd=$(pwd) addr=$(ip -4 -o addr show | grep -o '10\.201\.[0-9]*\.[0-9]*' | head -1)" ;;
  *-pebble-ready)
    c="${hook%-pebble-ready}"
    if [ -S "/charm/containers/$c/pebble.socket" ]; then juju-log "socket: $c ok"; else juju-log "socket: $c missing"; fi ;;
  config-changed)
    if [ "$(is-leader --format json)" = "true" ] && command -v pod-spec-set >/dev/null; then
      printf 'version: 3\ncontainers:\n- name: x\n  image: redis\n' | pod-spec-set && juju-log "pod-spec-set: accepted"
    fi ;;
  start)
    status-set active "side ok" ;;
  get-info)
    action-set "hostname=$(hostname)" "charm-dir=$JUJU_CHARM_DIR" "socket=$(test -S /charm/containers/app/pebble.socket && echo yes)" ;;
esac
exit 0
"#;

fn zip_charm(dir: &std::path::Path, name: &str, files: &[(&str, &str, u32)]) -> PathBuf {
    use zip::write::SimpleFileOptions;
    let path = dir.join(name);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).expect("create charm"));
    for (n, body, mode) in files {
        zip.start_file(*n, SimpleFileOptions::default().unix_permissions(*mode)).expect("zip");
        zip.write_all(body.as_bytes()).expect("zip");
    }
    zip.finish().expect("zip");
    path
}

fn side_charm(m: &TestModel) -> PathBuf {
    zip_charm(
        &m.work,
        "testside.charm",
        &[
            ("metadata.yaml", SIDE_META, 0o644),
            ("manifest.yaml", MANIFEST, 0o644),
            ("config.yaml", CONFIG, 0o644),
            ("actions.yaml", "get-info:\n  description: info\n", 0o644),
            ("dispatch", SIDE_DISPATCH, 0o755),
        ],
    )
}

fn deploy_side(m: &TestModel, version: &str) {
    let charm = side_charm(m);
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "app-image=redis:7.0", "--juju-version", version]);
    m.wait_active("testside");
}

/// The `juju-log` messages of the unit, in order.
fn logs(m: &TestModel, prefix: &str) -> Vec<String> {
    m.debug_log()
        .lines()
        .filter_map(|l| l.split_once(" INFO unit.testside/0.juju-log ").map(|(_, msg)| msg.to_string()))
        .filter(|msg| msg.starts_with(prefix))
        .collect()
}

fn ran(m: &TestModel) -> Vec<String> {
    m.debug_log()
        .lines()
        .filter_map(|l| l.split_once("ran \"").and_then(|(_, r)| r.split('"').next()).map(str::to_string))
        .collect()
}

fn deploy_err(m: &TestModel, charm: &std::path::Path, version: &str) -> String {
    let out =
        m.run(&["deploy", charm.to_str().unwrap(), "--resource", "app-image=redis:7.0", "--juju-version", version]);
    assert!(!out.status.success(), "deploy should fail");
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

#[test]
fn the_format_is_told_as_juju_tells_it_and_what_juju_refuses_is_refused() {
    let m = TestModel::new("side-format");
    // Mixed v1 and v2 keys: juju/charm `ensureUnambiguousFormat`'s text.
    let mixed = zip_charm(
        &m.work,
        "mixed.charm",
        &[("metadata.yaml", &format!("{SIDE_META}series: [kubernetes]\n"), 0o644), ("dispatch", SIDE_DISPATCH, 0o755)],
    );
    assert_eq!(
        deploy_err(&m, &mixed, "3.6.0"),
        "ERROR ambiguous metadata: keys \"series\" cannot be used with \"assumes\", \"containers\""
    );
    // A podspec (v1) charm on Juju 4.0: `checkCharmFormat`.
    let v1 = build_charm(&m.work, &CharmOpts::default());
    let out =
        m.run(&["deploy", v1.to_str().unwrap(), "--resource", "redis-image=redis:7.0", "--juju-version", "4.0.0"]);
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "ERROR deploying format v1 charms not supported");
    // A sidecar charm on a Juju juju-local does not model sidecars for.
    let side = side_charm(&m);
    assert!(deploy_err(&m, &side, "2.9.31").contains("is a sidecar (format v2) charm"));
    assert!(!m.dir.join("model.json").exists(), "a refused deploy left a model behind");
}

#[test]
fn a_sidecar_unit_runs_its_hooks_in_the_charm_container_with_pebble_ready_in_the_uniter_order() {
    let m = TestModel::new("side-pod");
    deploy_side(&m, "3.6.0");
    // The objects: StatefulSet testside, both Services, pod testside-0 with charm + one container per
    // metadata container, sorted.
    let k = m.k8s("testside");
    assert_eq!(k["workload"]["kind"], "StatefulSet");
    assert_eq!(k["services"], serde_json::json!(["testside", "testside-endpoints"]));
    let pods = k["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0]["name"], "testside-0");
    let names: Vec<&str> =
        pods[0]["containers"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["charm", "app", "other"]);
    let tmpl = &k["workload"]["template"]["containers"];
    assert_eq!(tmpl[1]["args"][0], "--create-dirs");
    assert_eq!(tmpl[1]["args"][1], "--hold");
    let mounts: Vec<&str> =
        tmpl[1]["volume_mounts"].as_array().unwrap().iter().map(|v| v["mount_path"].as_str().unwrap()).collect();
    assert_eq!(mounts, ["/charm/container", "/jl-side-data"]);
    // Order: storage first, install, relation-created, leader-elected; pebble-ready once per container, after
    // leadership and before start; config-changed, start.
    let hooks = ran(&m);
    let pos = |h: &str| hooks.iter().position(|x| x == h).unwrap_or_else(|| panic!("{h} did not run: {hooks:?}"));
    assert_eq!(
        &hooks[..4],
        ["data-storage-attached", "install", "cluster-relation-created", "leader-elected"],
        "{hooks:?}"
    );
    for c in ["app", "other"] {
        let name = format!("{c}-pebble-ready");
        assert_eq!(hooks.iter().filter(|h| **h == name).count(), 1, "{hooks:?}");
        assert!(pos(&name) > pos("leader-elected") && pos(&name) < pos("start"), "{hooks:?}");
    }
    assert!(pos("config-changed") < pos("start"));
    // Each pebble-ready hook found its container's socket; install ran in the pod (hostname, address) with the
    // charm dir of Juju 3's charm container.
    assert_eq!(logs(&m, "socket:"), ["socket: app ok", "socket: other ok"].map(String::from).to_vec());
    let addr = m.address("testside/0");
    assert_eq!(
        logs(&m, "where:"),
        vec![format!(
            "where: host=testside-0 dir=/var/lib/juju/agents/unit-testside-0/charm \
             pwd=/var/lib/juju/agents/unit-testside-0/charm addr={addr}"
        )]
    );
    // Juju 3.x keeps pod-spec-set (stored, ignored): the template is still the sidecar one.
    assert_eq!(logs(&m, "pod-spec-set:"), ["pod-spec-set: accepted"]);
    assert_eq!(m.k8s("testside")["workload"]["template"]["containers"].as_array().unwrap().len(), 3);
    // The status is the charm's.
    let st = m.status();
    let u = TestModel::unit(&st, "testside/0");
    assert_eq!(u["workload-status"]["current"], "active");
    assert_eq!(u["workload-status"]["message"], "side ok");
    // Actions run in the charm container too.
    let out = m.ok(&["run", "testside/0", "get-info"]);
    assert!(out.contains("hostname: testside-0"), "{out}");
    assert!(out.contains("charm-dir: /var/lib/juju/agents/unit-testside-0/charm"), "{out}");
    assert!(out.contains("socket: 'yes'") || out.contains("socket: yes"), "{out}");
}

#[test]
fn a_restarted_workload_container_gets_pebble_ready_again_with_an_empty_pebble() {
    let m = TestModel::new("side-restart");
    deploy_side(&m, "3.6.0");
    let layers = m.dir.join("pods/testside-0/containers/app/pebble/layers");
    std::fs::create_dir_all(&layers).unwrap();
    std::fs::write(layers.join("001-x.yaml"), "services: {}\n").unwrap();
    let pid = m.pod_pid("testside-0");
    let app_pid = m.pod("testside-0")["containers"][1]["pid"].as_i64().unwrap();
    assert!(app_pid > 0 && pid > 0);
    unsafe_kill(app_pid);
    m.wait_for("the app container to restart", || {
        let c = &m.pod("testside-0")["containers"][1];
        (c["restart_count"].as_u64() == Some(1) && c["state"] == "running").then_some(())
    });
    assert!(!layers.join("001-x.yaml").exists(), "the restarted container kept its old Pebble directory");
    // The next time the uniter runs (any command that runs hooks), the new Pebble gets its pebble-ready.
    m.ok(&["run-hook", "testside/0", "update-status"]);
    let hooks = ran(&m);
    assert_eq!(hooks.iter().filter(|h| *h == "app-pebble-ready").count(), 2, "{hooks:?}");
    assert_eq!(hooks.iter().filter(|h| *h == "other-pebble-ready").count(), 1, "{hooks:?}");
}

fn unsafe_kill(pid: i64) {
    let out = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).output().unwrap();
    assert!(out.status.success());
}

#[test]
fn juju_4_has_no_leader_or_spec_tools() {
    let m = TestModel::new("side-v4");
    deploy_side(&m, "4.0.0");
    assert_eq!(logs(&m, "tools:"), ["tools:     is-leader"]);
    assert!(logs(&m, "pod-spec-set:").is_empty());
}

#[test]
fn scaling_a_sidecar_app_down_runs_the_departure_hooks_in_the_live_pod_before_the_pod_goes() {
    let m = TestModel::new("side-scale");
    let charm = side_charm(&m);
    m.ok(&[
        "deploy",
        charm.to_str().unwrap(),
        "--resource",
        "app-image=redis:7.0",
        "--juju-version",
        "3.6.0",
        "-n",
        "2",
    ]);
    m.wait_active("testside");
    assert!(m.pods_json()["pods"]["testside-1"].is_object());
    m.ok(&["scale", "testside", "1"]);
    // testside/1's stop and remove ran in its charm container (a hook there fails if the pod is gone).
    let log = m.debug_log();
    for h in ["stop", "remove"] {
        let ran_there = log.lines().any(|l| l.starts_with("unit-testside-1:") && l.contains(&format!("ran \"{h}\"")));
        assert!(ran_there, "{h} did not run on testside/1:\n{log}");
    }
    assert!(!log.contains("hook failed"), "{log}");
    m.wait_for("pod testside-1 to go", || (!m.pods_json()["pods"]["testside-1"].is_object()).then_some(()));
    assert_eq!(m.k8s("testside")["workload"]["replicas"], 1);
    m.ok(&["scale", "testside", "2"]);
    m.wait_active("testside");
    assert_eq!(m.k8s("testside")["workload"]["replicas"], 2);
    // remove-application: every unit's departure hooks in its live pod, then the objects and pods go.
    m.ok(&["remove", "testside"]);
    let log = m.debug_log();
    assert!(!log.contains("hook failed"), "{log}");
    assert!(m.pods_json()["pods"].as_object().is_none_or(|p| p.is_empty()), "{}", m.pods_json());
}
