//! Actions and relation-changed, as Juju 2.9 runs them for podspec charms: an action runs in the first
//! container of the unit's pod on the pod's copy of the charm (findings §5a), its deferred changes are
//! committed on exit 0 (also after action-fail) and discarded otherwise (§5b-d), it waits while the
//! workload container is not running (§5e); and a committed relation change fires relation-changed on
//! the units Juju's watchers would wake (§6), after hooks and actions alike.

use crate::common::*;

const ACTIONS: &str =
    "probe:\n  description: p\nchange:\n  description: c\n  params:\n    mode: {type: string, default: ok}\n";

const ARMS: &str = r#"  probe)
    action-set "charm-dir=$JUJU_CHARM_DIR" "pwd=$(pwd)" "hostname=$(hostname)" \
      "pid1=$(tr '\0' ' ' < /proc/1/cmdline)" "conf=$(cat /etc/jl-test-conf/hello.txt)" \
      "sidecar=$(test -f /jl-test-sidecar/marker && echo yes || echo no)" \
      "state-dir=$(test -d "$JUJU_CHARM_DIR/../state" && echo yes || echo no)" \
      "counter=$(state-get counter)" "dispatch=$JUJU_DISPATCH_PATH" "argv0=$0" ;;
  change)
    MODE=$(action-get mode)
    state-set "from-action=$MODE"
    R=$(relation-ids cluster)
    relation-set -r "$R" "unit-key=$MODE"
    if [ "$(is-leader --format json)" = true ]; then relation-set -r "$R" --app "app-key=$MODE"; fi
    status-set active "from action $MODE"
    case "$MODE" in fail) action-fail "asked to fail" ;; exit) exit 3 ;; esac ;;
  update-status)
    R=$(relation-ids cluster)
    relation-set -r "$R" "tick=$(date +%s%N)"
    if [ "$(is-leader --format json)" = true ]; then relation-set -r "$R" --app "tick=$(date +%s%N)"; fi ;;
  cluster-relation-changed)
    echo "$hook remote=${JUJU_REMOTE_UNIT-} app=${JUJU_REMOTE_APP-}" >> "$STATE/rel.log" ;;"#;

const SPEC: &str = "version: 3
containers:
- name: redis
  image: $IMAGE
  ports: [{containerPort: $PORT, protocol: TCP, name: redis}]
  command: [redis-server, --port, '$PORT', --bind, 0.0.0.0, --protected-mode, 'no', --save, '']
  volumeConfig:
  - name: conf
    mountPath: /etc/jl-test-conf
    files: [{path: hello.txt, content: hello}]
  kubernetes:
    readinessProbe: {tcpSocket: {port: $PORT}, periodSeconds: 1}
- name: sidecar
  image: redis:7.0
  command: [sh, -c, 'touch /jl-test-sidecar/marker; while :; do sleep 1; done']
  volumeConfig:
  - name: sidecar-only
    mountPath: /jl-test-sidecar
    emptyDir: {}
";

fn deploy(m: &TestModel, units: &str, image: &str) {
    let spec_file = m.work.join("spec.yaml");
    std::fs::write(&spec_file, SPEC).unwrap();
    let opts = CharmOpts {
        stateful: true,
        spec_file: Some(spec_file),
        extra_case: ARMS.into(),
        actions_yaml: Some(ACTIONS.into()),
        ..Default::default()
    };
    let charm = build_charm(&m.work, &opts);
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", &format!("redis-image={image}"), "-n", units]);
}

fn action(m: &TestModel, unit: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["run-action", unit];
    all.extend_from_slice(args);
    let out = m.ok(&all);
    let doc: serde_json::Value = serde_yaml::from_str(&out).expect("run-action prints YAML");
    doc[format!("unit-{}", unit.replace('/', "-"))].clone()
}

fn rel_log(m: &TestModel, n: u32) -> Vec<String> {
    m.state_file("testredis", n, "rel.log").unwrap_or_default().lines().map(str::to_string).collect()
}

fn clear_rel_logs(m: &TestModel, units: u32) {
    for n in 0..units {
        let _ = std::fs::remove_file(m.dir.join(format!("agents/unit-testredis-{n}/state/rel.log")));
    }
}

/// findings §5a (`runner.go` `RunAction`, `exec.getValidatedPodContainer`, `caasunitinit.go`): the action
/// runs in the pod's first container (its mounts, hostname, PID namespace: PID 1 is that container's
/// process), with JUJU_CHARM_DIR = /var/lib/juju/agents/unit-<app>-<n>/charm, a copy of the charm on
/// the pod's Juju data dir with no operator state/ dir beside it; the charm sees its state through
/// state-get only.
#[test]
fn an_action_runs_in_the_first_container_on_the_pods_charm_copy() {
    let m = TestModel::new("action-where");
    deploy(&m, "1", "redis:7.0");
    m.wait_active("testredis");
    let r = action(&m, "testredis/0", &["probe"]);
    assert_eq!(r["status"], "completed", "{r}");
    let res = &r["results"];
    let charm = "/var/lib/juju/agents/unit-testredis-0/charm";
    assert_eq!(res["charm-dir"], charm);
    assert_eq!(res["pwd"], charm);
    assert_eq!(res["argv0"], format!("{charm}/dispatch"));
    assert_eq!(res["dispatch"], "actions/probe");
    assert_eq!(res["hostname"], "testredis-0");
    assert!(res["pid1"].as_str().unwrap().starts_with("redis-server"), "{res}");
    assert_eq!(res["conf"], "hello");
    assert_eq!(res["sidecar"], "no", "the action ran in another container");
    assert_eq!(res["state-dir"], "no", "the operator's state/ dir is visible to the action");
    assert_eq!(res["counter"], "config-changed", "state-get does not see the committed state");
}

/// findings §5b-d and §6 (`context.go` `Flush`: doFlush only when the action's error is nil): a
/// non-zero exit discards state-set and relation-set (status-set is immediate and stays), and fails
/// the action with `command terminated with exit code N`; after action-fail and exit 0 the changes are
/// committed, and relation-changed runs: for the leader's peer application-bag write on every unit,
/// the writer included (JUJU_REMOTE_UNIT empty), for its unit-bag write on the other unit only.
#[test]
fn an_action_commits_on_exit_0_even_after_action_fail_and_discards_on_failure() {
    let m = TestModel::new("action-commit");
    deploy(&m, "2", "redis:7.0");
    m.wait_active("testredis");
    clear_rel_logs(&m, 2);
    let r = action(&m, "testredis/0", &["change", "mode=exit"]);
    assert_eq!(r["status"], "failed");
    assert_eq!(r["message"], "command terminated with exit code 3");
    let mj = m.model_json();
    assert!(mj["apps"]["testredis"]["units"]["0"]["state"]["from-action"].is_null(), "state-set was committed");
    assert!(mj["relations"]["0"]["app_data"]["testredis"]["app-key"].is_null(), "relation-set was committed");
    assert!(mj["relations"]["0"]["unit_data"]["testredis/0"]["unit-key"].is_null());
    assert_eq!(
        mj["apps"]["testredis"]["units"]["0"]["workload"]["message"], "from action exit",
        "status-set is immediate"
    );
    assert!(rel_log(&m, 0).is_empty() && rel_log(&m, 1).is_empty(), "a discarded change fired relation-changed");

    let r = action(&m, "testredis/0", &["change", "mode=fail"]);
    assert_eq!(r["status"], "failed");
    assert_eq!(r["message"], "asked to fail");
    let mj = m.model_json();
    assert_eq!(mj["apps"]["testredis"]["units"]["0"]["state"]["from-action"], "fail");
    assert_eq!(mj["relations"]["0"]["app_data"]["testredis"]["app-key"], "fail");
    assert_eq!(mj["relations"]["0"]["unit_data"]["testredis/0"]["unit-key"], "fail");
    assert_eq!(rel_log(&m, 0), ["cluster-relation-changed remote= app=testredis"]);
    assert_eq!(
        rel_log(&m, 1),
        ["cluster-relation-changed remote= app=testredis", "cluster-relation-changed remote=testredis/0 app=testredis"]
    );
    let r = action(&m, "testredis/0", &["change"]);
    assert_eq!(r["status"], "completed");
    assert_eq!(m.model_json()["apps"]["testredis"]["units"]["0"]["state"]["from-action"], "ok");
}

/// findings §6, from hooks: a non-leader's unit-bag write wakes only the other unit; the leader's
/// peer application-bag write wakes every unit, itself included, before the unit-bag hook.
#[test]
fn relation_changed_goes_to_the_units_juju_wakes() {
    let m = TestModel::new("relchanged");
    deploy(&m, "2", "redis:7.0");
    m.wait_active("testredis");
    clear_rel_logs(&m, 2);
    m.ok(&["run-hook", "testredis/1", "update-status"]);
    assert_eq!(rel_log(&m, 0), ["cluster-relation-changed remote=testredis/1 app=testredis"]);
    assert!(rel_log(&m, 1).is_empty(), "the writer got its own unit-bag change");
    clear_rel_logs(&m, 2);
    m.ok(&["run-hook", "testredis/0", "update-status"]);
    assert_eq!(rel_log(&m, 0), ["cluster-relation-changed remote= app=testredis"]);
    assert_eq!(
        rel_log(&m, 1),
        ["cluster-relation-changed remote= app=testredis", "cluster-relation-changed remote=testredis/0 app=testredis"]
    );
}

/// findings §5e (`remotestate` `ActionsBlocked = !runningStatus.Running`): while the workload container
/// is not running the action is held pending, not run elsewhere.
#[test]
fn an_action_stays_pending_while_the_workload_container_is_not_running() {
    let m = TestModel::new("action-pending");
    deploy(&m, "1", "mariadb:10");
    let r = action(&m, "testredis/0", &["probe", "--wait", "2"]);
    assert_eq!(r["status"], "pending", "{r}");
    assert!(r["results"].is_null(), "{r}");
}
