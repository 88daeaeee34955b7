//! Relations between two deployed applications (`relate A[:ep] B[:ep]`), as Juju 3.1-3.6 makes them
//! (juju-local `lifecycle::relate_apps`, `queue_relation_teardown` and `queue_relation_changed` cite the
//! sources): the endpoint inference and its refusals (`no relations found`, ambiguity, unknown endpoint,
//! already exists, `limit`); created → joined → changed on every unit of both sides with the remote
//! context; relation-get of a remote unit's committed bag; relation-changed on the other side after a
//! committed unit- or application-bag write, and nothing after a failed hook; a new unit joining;
//! remove-relation's departed/broken on both sides; remove-application removing its relations first;
//! a podspec and a sidecar application related in one 3.6 model.

use crate::common::*;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Every hook logs `HOOK|<hook>|<remote unit>|<remote app>|<relation id>|<departing unit>` with
/// juju-log (sidecar hooks run in the pod, so nothing is written beside the charm); relation-changed
/// with a remote unit logs that unit's bag (`GOT|…`). config-changed writes the `value` option into the
/// unit bag of every relation of the charm's endpoints (`EPS`), and into the application bag when
/// leader; `value=fail` writes and then fails.
fn dispatch(eps: &str) -> String {
    format!(
        r#"#!/bin/sh
hook="${{JUJU_DISPATCH_PATH#*/}}"
juju-log "HOOK|$hook|$JUJU_REMOTE_UNIT|$JUJU_REMOTE_APP|$JUJU_RELATION_ID|$JUJU_DEPARTING_UNIT"
case "$hook" in
  start) status-set active ;;
  config-changed)
    v="$(config-get value)"
    [ -n "$v" ] || exit 0
    for ep in {eps}; do
      for r in $(relation-ids "$ep"); do
        relation-set -r "$r" "value=$v"
        if [ "$(is-leader --format json)" = "true" ]; then relation-set -r "$r" --app "appvalue=$v"; fi
      done
    done
    [ "$v" != fail ] || exit 1 ;;
  *-relation-changed)
    if [ -n "$JUJU_REMOTE_UNIT" ]; then
      juju-log "GOT|$hook|$JUJU_REMOTE_UNIT|$(relation-get --format json - "$JUJU_REMOTE_UNIT")"
    else
      juju-log "GOTAPP|$hook|$JUJU_REMOTE_APP|$(relation-get --format json --app - "$JUJU_REMOTE_APP")"
    fi ;;
esac
exit 0
"#
    )
}

const CONFIG_VALUE: &str = "options:\n  value:\n    type: string\n    default: ''\n    description: v\n";

/// The provider: two `redis` endpoints (so an unqualified relate is ambiguous) and a peer.
const PROV_META: &str = "name: prov\nsummary: t\ndescription: t\nseries: [kubernetes]\n\
provides:\n  db:\n    interface: redis\n  cache:\n    interface: redis\npeers:\n  ring:\n    interface: ringpeer\n";
/// The requirer: `source` (redis, limit 1), `wrong` (another interface), `alsoprov` (a redis provider).
const REQ_META: &str = "name: req\nsummary: t\ndescription: t\nseries: [kubernetes]\n\
requires:\n  source:\n    interface: redis\n    limit: 1\n  wrong:\n    interface: mysql\n\
provides:\n  alsoprov:\n    interface: redis\n";
const SIDE_REQ_META: &str = "name: sidereq\nsummary: t\ndescription: t\nassumes: [k8s-api]\n\
containers:\n  app:\n    resource: app-image\nresources:\n  app-image:\n    type: oci-image\n    description: image\n\
requires:\n  source:\n    interface: redis\n    limit: 1\n";
const MANIFEST: &str = "bases:\n  - name: ubuntu\n    channel: \"22.04\"\n    architectures: [amd64]\n";

fn zip_charm(dir: &Path, name: &str, files: &[(&str, &str, u32)]) -> PathBuf {
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

fn podspec_charm(m: &TestModel, name: &str, meta: &str, eps: &str) -> PathBuf {
    let d = dispatch(eps);
    zip_charm(
        &m.work,
        &format!("{name}.charm"),
        &[("metadata.yaml", meta, 0o644), ("config.yaml", CONFIG_VALUE, 0o644), ("dispatch", &d, 0o755)],
    )
}

/// Deploys `prov` (n units) and `req` (k units), podspec, on the model's default Juju.
fn deploy_pair(m: &TestModel, prov_units: u32, req_units: u32) {
    let prov = podspec_charm(m, "prov", PROV_META, "db cache");
    let req = podspec_charm(m, "req", REQ_META, "source alsoprov");
    m.ok(&["deploy", prov.to_str().unwrap(), "-n", &prov_units.to_string()]);
    m.ok(&["deploy", req.to_str().unwrap(), "-n", &req_units.to_string()]);
}

/// The `HOOK|…` records of a unit, in order, as `hook remote-unit remote-app relation-id departing`.
fn records(m: &TestModel, unit: &str, tag: &str) -> Vec<String> {
    let marker = format!(" unit.{unit}.juju-log ");
    m.debug_log()
        .lines()
        .filter_map(|l| l.split_once(&marker).map(|(_, msg)| msg.to_string()))
        .filter_map(|msg| msg.split_once(&format!("{tag}|")).map(|(_, r)| r.replace('|', " ").trim_end().to_string()))
        .collect()
}

/// The relation hooks of a unit (HOOK records whose hook name has `-relation-`).
fn rel_hooks(m: &TestModel, unit: &str) -> Vec<String> {
    records(m, unit, "HOOK").into_iter().filter(|r| r.contains("-relation-") && !r.contains("ring-relation")).collect()
}

fn err(m: &TestModel, args: &[&str]) -> String {
    let out = m.run(args);
    assert!(!out.status.success(), "juju-local {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

fn relation_ids(m: &TestModel) -> Vec<String> {
    m.model_json()["relations"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["app"] != r["remote_app"])
        .map(|r| {
            format!("{}:{} {}:{}", r["app"], r["endpoint"], r["remote_app"], r["remote_endpoint"]).replace('"', "")
        })
        .collect()
}

#[test]
fn endpoints_are_inferred_and_refused_as_juju_does() {
    let m = TestModel::new("crel-infer");
    deploy_pair(&m, 1, 1);
    // Interface mismatch, and two providers of the same interface: `InferEndpoints` finds no candidate.
    assert_eq!(err(&m, &["relate", "req:wrong", "prov:db"]), "ERROR no relations found");
    assert_eq!(err(&m, &["relate", "req:alsoprov", "prov:db"]), "ERROR no relations found");
    // `Application.Endpoint`.
    assert_eq!(err(&m, &["relate", "req:nope", "prov"]), "ERROR application \"req\" has no \"nope\" relation");
    assert_eq!(err(&m, &["relate", "req:source", "ghost:db"]), "ERROR application \"ghost\" not found");
    // Two candidates: ambiguous, keys sorted, requirer first in each.
    assert_eq!(
        err(&m, &["relate", "req", "prov"]),
        "ERROR ambiguous relation: \"req prov\" could refer to \"req:source prov:cache\"; \"req:source prov:db\""
    );
    assert!(relation_ids(&m).is_empty());
    // Either order; `juju integrate` prints nothing.
    assert_eq!(m.ok(&["relate", "prov:db", "req"]), "");
    assert_eq!(relation_ids(&m), ["prov:db req:source"]);
    let st = m.status();
    let rel = st["relations"].as_array().unwrap().iter().find(|r| r["interface"] == "redis").unwrap().clone();
    assert_eq!(rel["provider"], "prov:db");
    assert_eq!(rel["requirer"], "req:source");
    assert_eq!(
        err(&m, &["relate", "req:source", "prov:db"]),
        "ERROR cannot add relation \"req:source prov:db\": relation req:source prov:db already exists"
    );
    // `limit: 1` on req:source (`enforceMaxRelationLimit`).
    assert_eq!(
        err(&m, &["relate", "req:source", "prov:cache"]),
        "ERROR cannot add relation \"req:source prov:cache\": establishing a new relation for req:source would \
         exceed its maximum relation limit of 1"
    );
    assert_eq!(relation_ids(&m), ["prov:db req:source"]);
    // The stand-in form is unchanged beside it.
    let out = m.ok(&["relate", "prov:cache", "client"]);
    assert!(out.contains("related-endpoint: prov:cache"), "{out}");
}

#[test]
fn both_sides_run_created_joined_changed_with_the_remote_context() {
    let m = TestModel::new("crel-join");
    deploy_pair(&m, 2, 1);
    m.ok(&["relate", "req:source", "prov:db"]);
    let rid = m.model_json()["relations"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, r)| r["endpoint"] == "db")
        .map(|(k, _)| k.clone())
        .unwrap();
    for p in ["prov/0", "prov/1"] {
        assert_eq!(
            rel_hooks(&m, p),
            [
                format!("db-relation-created  req db:{rid}"),
                format!("db-relation-joined req/0 req db:{rid}"),
                format!("db-relation-changed req/0 req db:{rid}"),
            ],
            "{p}"
        );
    }
    assert_eq!(
        rel_hooks(&m, "req/0"),
        [
            format!("source-relation-created  prov source:{rid}"),
            format!("source-relation-joined prov/0 prov source:{rid}"),
            format!("source-relation-changed prov/0 prov source:{rid}"),
            format!("source-relation-joined prov/1 prov source:{rid}"),
            format!("source-relation-changed prov/1 prov source:{rid}"),
        ]
    );
    // relation-get of a remote unit: its committed bag (here the settings Juju wrote when it entered scope).
    let got = records(&m, "req/0", "GOT");
    let addr = m.address("prov/1");
    let last: serde_json::Value =
        serde_json::from_str(got.last().unwrap().splitn(3, ' ').nth(2).unwrap()).expect("bag json");
    assert_eq!(last["ingress-address"], addr.as_str(), "{got:?}");
    // A new unit on one side: it runs created/joined/changed for every remote unit, and every remote
    // unit sees it join.
    m.ok(&["scale", "req", "2"]);
    assert_eq!(
        rel_hooks(&m, "req/1"),
        [
            format!("source-relation-created  prov source:{rid}"),
            format!("source-relation-joined prov/0 prov source:{rid}"),
            format!("source-relation-changed prov/0 prov source:{rid}"),
            format!("source-relation-joined prov/1 prov source:{rid}"),
            format!("source-relation-changed prov/1 prov source:{rid}"),
        ]
    );
    for p in ["prov/0", "prov/1"] {
        let h = rel_hooks(&m, p);
        assert_eq!(
            h[3..],
            [format!("db-relation-joined req/1 req db:{rid}"), format!("db-relation-changed req/1 req db:{rid}")],
            "{p}"
        );
    }
}

#[test]
fn committed_bag_changes_fire_changed_on_the_other_side_and_a_failed_hook_commits_nothing() {
    let m = TestModel::new("crel-changed");
    deploy_pair(&m, 1, 2);
    m.ok(&["relate", "req:source", "prov:db"]);
    let before: Vec<usize> = ["req/0", "req/1"].iter().map(|u| rel_hooks(&m, u).len()).collect();
    let prov_before = rel_hooks(&m, "prov/0").len();
    // prov/0 (the leader) writes its unit bag and the application bag: every req unit runs
    // source-relation-changed for the application first, then for the unit.
    m.ok(&["config", "prov", "value=v1"]);
    for (i, u) in ["req/0", "req/1"].iter().enumerate() {
        let h = rel_hooks(&m, u);
        // "hook remote-unit remote-app" of the new records.
        let new: Vec<String> =
            h[before[i]..].iter().map(|s| s.split(' ').take(3).collect::<Vec<_>>().join(" ")).collect();
        assert_eq!(new, ["source-relation-changed  prov", "source-relation-changed prov/0 prov"], "{u}: {h:?}");
        let got = records(&m, u, "GOT");
        let bag: serde_json::Value = serde_json::from_str(got.last().unwrap().splitn(3, ' ').nth(2).unwrap()).unwrap();
        assert_eq!(bag["value"], "v1");
        let app = records(&m, u, "GOTAPP");
        assert!(app.last().unwrap().ends_with("{\"appvalue\":\"v1\"}"), "{app:?}");
    }
    // The writer's own side is not told of its own unit write.
    assert_eq!(rel_hooks(&m, "prov/0").len(), prov_before);
    // A req unit's write reaches prov/0 only (not the other req unit: it is not related to itself).
    let req1 = rel_hooks(&m, "req/1").len();
    m.ok(&["config", "req", "value=r1"]);
    let h = rel_hooks(&m, "prov/0");
    let rid = h[0].rsplit(' ').next().unwrap().to_string();
    assert!(h[prov_before..].contains(&format!("db-relation-changed  req {rid}")), "{h:?}");
    assert!(h[prov_before..].contains(&format!("db-relation-changed req/0 req {rid}")), "{h:?}");
    let r1 = rel_hooks(&m, "req/1");
    assert!(r1[req1..].iter().all(|x| !x.contains("req/0")), "{r1:?}");
    // A hook that writes then fails commits nothing: no relation-changed anywhere, the bag unchanged.
    let req_counts: Vec<usize> = ["req/0", "req/1"].iter().map(|u| rel_hooks(&m, u).len()).collect();
    let out = m.run(&["config", "prov", "value=fail"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("config-changed"), "the failed hook is reported: {stderr}");
    assert_eq!(TestModel::unit(&m.status(), "prov/0")["juju-status"]["current"], "error");
    for (i, u) in ["req/0", "req/1"].iter().enumerate() {
        assert_eq!(rel_hooks(&m, u).len(), req_counts[i], "{u}: {:?}", rel_hooks(&m, u));
    }
    let mj = m.model_json();
    let rel = mj["relations"].as_object().unwrap().values().find(|r| r["endpoint"] == "db").unwrap().clone();
    assert_eq!(rel["unit_data"]["prov/0"]["value"], "v1");
    assert_eq!(rel["app_data"]["prov"]["appvalue"], "v1");
}

#[test]
fn remove_relation_and_remove_application_run_departed_and_broken_on_both_sides() {
    let m = TestModel::new("crel-remove");
    deploy_pair(&m, 1, 1);
    m.ok(&["relate", "req:source", "prov:db"]);
    let rid = |m: &TestModel| {
        m.model_json()["relations"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(_, r)| r["endpoint"] == "db")
            .map(|(k, _)| k.clone())
            .unwrap()
    };
    let id = rid(&m);
    let (p0, r0) = (rel_hooks(&m, "prov/0").len(), rel_hooks(&m, "req/0").len());
    m.ok(&["remove-relation", "prov:db", "req:source"]);
    // JUJU_DEPARTING_UNIT is the remote unit: both applications stay alive.
    assert_eq!(
        rel_hooks(&m, "prov/0")[p0..],
        [format!("db-relation-departed req/0 req db:{id} req/0"), format!("db-relation-broken  req db:{id}")]
    );
    assert_eq!(
        rel_hooks(&m, "req/0")[r0..],
        [
            format!("source-relation-departed prov/0 prov source:{id} prov/0"),
            format!("source-relation-broken  prov source:{id}")
        ]
    );
    assert!(relation_ids(&m).is_empty(), "{:?}", relation_ids(&m));
    assert_eq!(
        err(&m, &["remove-relation", "prov:db", "req:source"]),
        "ERROR relation matching \"prov:db req:source\" not found"
    );
    // Related again (limit 1 is free again), then prov goes: its relations first.
    m.ok(&["relate", "req:source", "prov:db"]);
    let id = rid(&m);
    let (p0, r0) = (records(&m, "prov/0", "HOOK").len(), rel_hooks(&m, "req/0").len());
    m.ok(&["remove", "prov"]);
    assert_eq!(
        rel_hooks(&m, "req/0")[r0..],
        [
            format!("source-relation-departed prov/0 prov source:{id} prov/0"),
            format!("source-relation-broken  prov source:{id}")
        ]
    );
    // The dying application's unit departs as itself, then stops.
    let prov: Vec<String> =
        records(&m, "prov/0", "HOOK")[p0..].iter().filter(|r| !r.contains("ring-")).cloned().collect();
    assert_eq!(
        prov,
        [
            format!("db-relation-departed req/0 req db:{id} prov/0"),
            format!("db-relation-broken  req db:{id}"),
            "stop".to_string(),
            "remove".to_string()
        ]
    );
    assert!(relation_ids(&m).is_empty());
    assert!(m.status()["applications"]["prov"].is_null());
}

#[test]
fn a_podspec_and_a_sidecar_application_relate_in_one_model() {
    let m = TestModel::new("crel-mixed");
    let prov = podspec_charm(&m, "prov", PROV_META, "db cache");
    m.ok(&["deploy", prov.to_str().unwrap(), "--juju-version", "3.6.0"]);
    let d = dispatch("source");
    let side = zip_charm(
        &m.work,
        "sidereq.charm",
        &[
            ("metadata.yaml", SIDE_REQ_META, 0o644),
            ("manifest.yaml", MANIFEST, 0o644),
            ("config.yaml", CONFIG_VALUE, 0o644),
            ("dispatch", &d, 0o755),
        ],
    );
    m.ok(&["deploy", side.to_str().unwrap(), "--resource", "app-image=redis:7.0"]);
    m.wait_active("sidereq");
    m.ok(&["relate", "sidereq:source", "prov:db"]);
    let h = rel_hooks(&m, "sidereq/0");
    assert_eq!(
        h.iter().map(|r| r.split(' ').next().unwrap()).collect::<Vec<_>>(),
        ["source-relation-created", "source-relation-joined", "source-relation-changed"]
    );
    assert!(h[1].starts_with("source-relation-joined prov/0 prov source:"), "{h:?}");
    let p = rel_hooks(&m, "prov/0");
    assert!(p[1].starts_with("db-relation-joined sidereq/0 sidereq db:"), "{p:?}");
    // The sidecar unit's write (in its charm container) reaches the podspec unit.
    let n = rel_hooks(&m, "prov/0").len();
    m.ok(&["config", "sidereq", "value=s1"]);
    let p = rel_hooks(&m, "prov/0");
    assert!(p[n..].iter().any(|r| r.starts_with("db-relation-changed sidereq/0 sidereq")), "{p:?}");
    let got = records(&m, "prov/0", "GOT");
    assert!(got.last().unwrap().contains("\"value\":\"s1\""), "{got:?}");
}
