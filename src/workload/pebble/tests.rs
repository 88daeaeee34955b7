//! The Pebble flavour against the real Redis workload and the [`FakePebble`]: the layer, the files, and what
//! [`PebbleRuntime::apply`] sends (and does not send) on each apply.

use serde_yaml::Value;

use super::*;
use crate::juju::fake::{FakeJuju, FakeModel};
use crate::juju::{HookEnv, HookTools};
use crate::layers::State;
use crate::pebble::fake::{FakePebble, Fault};
use crate::reactive::{Flags, Kv};
use crate::redis::config::RedisConfig;
use crate::redis::pod::{Deployment, workload};
use crate::workload::{Mount, Secret, Volume};

const PW: &str = "pebble-test-password-0123456789";

fn redis_workload(port: u16) -> Workload {
    let cfg = RedisConfig { port, ..RedisConfig::default() };
    let topo = Deployment { app: "redis-k8s".into(), units: 3, password: Some(PW.into()), previous_password: None };
    // Juju runs the containers' image in the sidecar flavour: the workload names none.
    workload(&cfg, None, &topo).unwrap()
}

/// A tiny reimplementation of canonical/x-go `strutil/shlex.Split` (the lexer Pebble splits commands with):
/// words, `'…'`, `"…"` with `\` escapes, `\x`, and a `#` comment at the start of a word.
fn shlex_split(s: &str) -> Vec<String> {
    #[derive(PartialEq)]
    enum St {
        Start,
        Word,
        Esc,
        DqEsc,
        Dq,
        Sq,
        Comment,
    }
    let mut out = Vec::new();
    let mut st = St::Start;
    let mut cur = String::new();
    for ch in s.chars() {
        let space = " \t\r\n".contains(ch);
        st = match st {
            St::Start if space => St::Start,
            St::Start | St::Word if ch == '"' => St::Dq,
            St::Start | St::Word if ch == '\'' => St::Sq,
            St::Start | St::Word if ch == '\\' => St::Esc,
            St::Start if ch == '#' => St::Comment,
            St::Word if space => {
                out.push(std::mem::take(&mut cur));
                St::Start
            }
            St::Start | St::Word | St::Esc => {
                cur.push(ch);
                St::Word
            }
            St::DqEsc => {
                cur.push(ch);
                St::Dq
            }
            St::Dq if ch == '"' => St::Word,
            St::Dq if ch == '\\' => St::DqEsc,
            St::Sq if ch == '\'' => St::Word,
            St::Dq | St::Sq => {
                cur.push(ch);
                st
            }
            St::Comment if ch == '\n' => St::Start,
            St::Comment => St::Comment,
        };
    }
    assert!(matches!(st, St::Start | St::Word | St::Comment), "unterminated: {s:?}");
    if st == St::Word {
        out.push(cur);
    }
    out
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

// ---- The layer ------------------------------------------------------------------------------------------------

#[test]
fn a_command_splits_back_to_exactly_its_arguments() {
    let cases: &[&[&str]] = &[
        &["sh", "/etc/redis-k8s/start-redis.sh"],
        &["sh", "-c", "echo 'hi there' \"$HOME\" \\n; exit 1"],
        &["x", "", "#not-a-comment", "a b", "it's", "''", "\"", "\\", "tab\there", "new\nline", "ünï", "[x]", "a#b"],
        &["redis-cli", "--pass", "p@ss w0rd!*?$(x)`y`"],
    ];
    for argv in cases {
        let argv = strings(argv);
        let joined = join_command(&argv).unwrap();
        assert_eq!(shlex_split(&joined), argv, "{joined}");
    }
    assert_eq!(join_command(&strings(&["sh", "/a/b.sh", "ready", "6379"])).unwrap(), "sh /a/b.sh ready 6379");
}

#[test]
fn a_command_pebble_would_misread_is_refused() {
    for argv in [strings(&[]), strings(&["cmd", "["]), strings(&["cmd", "]"])] {
        let e = join_command(&argv).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn the_redis_layer_has_both_services_their_checks_and_no_password() {
    let w = redis_workload(6379);
    let text = layer(&w).unwrap();
    assert!(!text.contains(PW), "the password is in the layer:\n{text}");
    assert_eq!(layer(&w).unwrap(), text, "the layer is deterministic");
    let doc: Value = serde_yaml::from_str(&text).unwrap();
    let services = doc["services"].as_mapping().unwrap();
    assert_eq!(services.keys().map(|k| k.as_str().unwrap()).collect::<Vec<_>>(), ["redis", "sentinel"]);
    let redis = &doc["services"]["redis"];
    assert_eq!(redis["override"], "replace");
    assert_eq!(redis["startup"], "enabled");
    assert_eq!(shlex_split(redis["command"].as_str().unwrap()), ["sh", "/etc/redis-k8s/start-redis.sh"]);
    assert_eq!(redis["on-check-failure"]["redis-alive"], "restart");
    assert_eq!(doc["services"]["sentinel"]["on-check-failure"]["sentinel-alive"], "restart");

    let checks = doc["checks"].as_mapping().unwrap();
    let names: Vec<_> = checks.keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(names, ["redis-alive", "redis-ready", "sentinel-alive", "sentinel-ready"]);
    let ready = &doc["checks"]["redis-ready"];
    assert_eq!((ready["level"].as_str(), ready["override"].as_str()), (Some("ready"), Some("replace")));
    assert_eq!((ready["period"].as_str(), ready["timeout"].as_str()), (Some("5s"), Some("5s")));
    assert_eq!(ready["threshold"].as_u64(), Some(3));
    let exec = shlex_split(ready["exec"]["command"].as_str().unwrap());
    assert_eq!(exec, ["sh", "/etc/redis-k8s/start-redis.sh", "ready", "6379"]);
    let alive = &doc["checks"]["redis-alive"];
    assert_eq!((alive["level"].as_str(), alive["tcp"]["port"].as_u64()), (Some("alive"), Some(6379)));
    assert_eq!((alive["period"].as_str(), alive["threshold"].as_u64()), (Some("10s"), Some(3)));
    assert_eq!(doc["checks"]["sentinel-ready"]["tcp"]["port"].as_u64(), Some(26379));
    assert!(alive.get("exec").is_none() && ready.get("tcp").is_none());
}

#[test]
fn each_container_layer_holds_only_its_own_service_and_checks() {
    let w = redis_workload(6379);
    let doc: Value = serde_yaml::from_str(&container_layer(&w, "sentinel").unwrap()).unwrap();
    let services: Vec<_> = doc["services"].as_mapping().unwrap().keys().map(|k| k.as_str().unwrap()).collect();
    let checks: Vec<_> = doc["checks"].as_mapping().unwrap().keys().map(|k| k.as_str().unwrap()).collect();
    assert_eq!((services, checks), (vec!["sentinel"], vec!["sentinel-alive", "sentinel-ready"]));
    assert!(container_layer(&w, "nope").unwrap_err().to_string().contains("nope"));
}

#[test]
fn a_check_pebble_would_refuse_is_an_error_naming_the_container() {
    let mut w = redis_workload(6379);
    w.containers[1].alive.period_s = 0;
    let e = layer(&w).unwrap_err().to_string();
    assert!(e.contains("sentinel") && e.contains("alive"), "{e}");
}

// ---- The files ------------------------------------------------------------------------------------------------

#[test]
fn the_files_are_the_config_volume_and_the_auth_secret_at_every_mount() {
    let w = redis_workload(6379);
    let all = files(&w).unwrap();
    let find = |container: &str, path: &str| {
        all.iter().find(|f| f.container == container && f.path == path).unwrap_or_else(|| panic!("{path}"))
    };
    for c in ["redis", "sentinel"] {
        for name in ["redis.conf", "sentinel.conf", "start-redis.sh", "start-sentinel.sh"] {
            assert_eq!(find(c, &format!("/etc/redis-k8s/{name}")).permissions, "644");
        }
        let password = find(c, "/etc/redis-auth/password");
        assert_eq!((password.bytes.as_slice(), password.permissions.as_str()), (PW.as_bytes(), "400"));
        assert_eq!(find(c, "/etc/redis-auth/auth.conf").permissions, "400");
        assert_eq!(find(c, "/etc/redis-auth/previous-password").permissions, "400");
    }
    assert_eq!(all.len(), 2 * 7, "{all:?}");
    assert!(all.iter().all(|f| !f.path.starts_with("/sentinel")), "a scratch volume has no files");
    assert!(!format!("{all:?}").contains(PW), "Debug shows a password");
}

#[test]
fn a_mount_of_an_undefined_volume_or_secret_is_an_error() {
    let mut w = redis_workload(6379);
    w.containers[0].mounts.push(Mount { volume: "ghost", path: "/ghost".into() });
    let e = files(&w).unwrap_err().to_string();
    assert!(e.contains("redis") && e.contains("ghost"), "{e}");

    let mut w = redis_workload(6379);
    w.secrets.clear();
    let e = files(&w).unwrap_err().to_string();
    assert!(e.contains("redis-k8s-auth") && !e.contains('\n'), "{e}");

    let mut w = redis_workload(6379);
    w.volumes.push(Volume { name: "x", source: Source::Secret { name: "s".into(), mode: 0o640 } });
    w.secrets.push(Secret { name: "s".into(), data: [("k", "v".to_owned())].into() });
    w.containers[0].mounts.push(Mount { volume: "x", path: "/x/".into() });
    let f = files(&w).unwrap().into_iter().find(|f| f.path == "/x/k").unwrap();
    assert_eq!(f.permissions, "640");
}

// ---- The runtime ----------------------------------------------------------------------------------------------

struct Harness {
    juju: FakeJuju,
    fakes: BTreeMap<&'static str, FakePebble>,
    runtime: PebbleRuntime,
    kv: Kv,
}

impl Harness {
    fn new() -> Harness {
        let fakes = BTreeMap::from([("redis", FakePebble::new()), ("sentinel", FakePebble::new())]);
        let runtime = PebbleRuntime::new(fakes.iter().map(|(name, fake)| Pebble::new(name, Box::new(fake.clone()))));
        Harness { juju: FakeJuju::new(FakeModel::new("redis-k8s/0")), fakes, runtime, kv: Kv::default() }
    }

    fn apply(&mut self, w: &Workload) -> Result<Applied> {
        let env = HookEnv::default();
        let mut tools = HookTools::new(Box::new(self.juju.clone()));
        let kv = std::mem::take(&mut self.kv);
        let mut ctx = Ctx::new(
            "config-changed",
            &env,
            &mut tools,
            Flags::new(Default::default(), Vec::new()),
            kv,
            State::default(),
        );
        let r = self.runtime.apply(&mut ctx, w);
        self.kv = ctx.kv;
        r
    }

    fn requests(&self, container: &str) -> Vec<String> {
        self.fakes[container].requests()
    }

    fn total_requests(&self) -> usize {
        self.fakes.values().map(|f| f.requests().len()).sum()
    }
}

fn first_apply_requests(wait_id: &str) -> Vec<String> {
    let mut expected = vec!["POST /v1/files".to_owned(); 7];
    expected.extend([
        "POST /v1/layers".to_owned(),
        "POST /v1/services".to_owned(),
        format!("GET /v1/changes/{wait_id}/wait"),
    ]);
    expected
}

#[test]
fn the_first_apply_sends_everything_and_the_second_nothing() {
    let mut h = Harness::new();
    let w = redis_workload(6379);
    assert_eq!(h.apply(&w).unwrap(), Applied::Changed);
    for c in ["redis", "sentinel"] {
        let fake = &h.fakes[c];
        let change = fake.changes().last().map(|ch| ch.id.clone()).unwrap();
        assert_eq!(h.requests(c), first_apply_requests(&change), "{c}");
        assert_eq!(
            fake.file("/etc/redis-auth/password").map(|f| (f.content, f.permissions)),
            Some((PW.as_bytes().to_vec(), "400".to_owned()))
        );
        assert!(fake.file("/etc/redis-k8s/start-redis.sh").is_some());
        assert_eq!(fake.service(c).map(|s| s.current), Some("active".to_owned()));
        let labels: Vec<_> = fake.layers().into_iter().map(|(l, _)| l).collect();
        assert_eq!(labels, [LAYER_LABEL]);
    }
    assert!(h.fakes["redis"].service("sentinel").is_none(), "sentinel runs only in its own container");
    assert_eq!(h.juju.model.borrow().last_status(), Some(("maintenance", "configuring container")));

    let before = h.total_requests();
    let statuses = h.juju.model.borrow().count("status-set");
    assert_eq!(h.apply(&w).unwrap(), Applied::Unchanged);
    assert_eq!(h.total_requests(), before, "an unchanged workload makes no Pebble call");
    assert_eq!(h.juju.model.borrow().count("status-set"), statuses);
}

#[test]
fn a_changed_config_file_pushes_only_that_file_and_restarts_nothing() {
    let mut h = Harness::new();
    let mut w = redis_workload(6379);
    h.apply(&w).unwrap();
    let before: Vec<_> = ["redis", "sentinel"].iter().map(|c| h.requests(c).len()).collect();
    let Source::Files(list) = &mut w.volumes[0].source else { panic!("the config volume") };
    list.iter_mut().find(|(n, _)| *n == "sentinel.conf").unwrap().1.push_str("# changed\n");
    assert_eq!(h.apply(&w).unwrap(), Applied::Changed);
    for (c, n) in ["redis", "sentinel"].iter().zip(before) {
        assert_eq!(h.requests(c)[n..], ["POST /v1/files"], "{c}");
        let conf = h.fakes[c].file("/etc/redis-k8s/sentinel.conf").unwrap();
        assert!(String::from_utf8(conf.content).unwrap().ends_with("# changed\n"));
        assert_eq!(h.fakes[c].service(c).map(|s| s.starts), Some(1), "{c} was restarted");
    }
}

#[test]
fn a_changed_port_adds_the_layer_and_replans() {
    let mut h = Harness::new();
    h.apply(&redis_workload(6379)).unwrap();
    let before = h.requests("redis").len();
    let sentinel_before = h.requests("sentinel").len();
    assert_eq!(h.apply(&redis_workload(6380)).unwrap(), Applied::Changed);
    let sent = &h.requests("redis")[before..];
    // redis.conf and both scripts (their settings) carry the port; sentinel.conf and the Secret do not.
    assert_eq!(sent[..3], ["POST /v1/files"; 3], "{sent:?}");
    assert_eq!(sent[3..5], ["POST /v1/layers", "POST /v1/services"]);
    assert!(sent[5].ends_with("/wait") && sent.len() == 6, "{sent:?}");
    let plan = h.fakes["redis"].plan();
    let port = &plan["checks"]["redis-alive"]["tcp"]["port"];
    assert_eq!(port.as_u64(), Some(6380));
    // The port is in the checks and the files, not in the service's definition: the replan restarts nothing, and
    // a running redis-server keeps its port until it is restarted or told live.
    assert_eq!(h.fakes["redis"].service("redis").map(|s| s.starts), Some(1));
    // Sentinel's layer does not depend on Redis's port: its files change, its service does not restart.
    let sentinel_sent = &h.requests("sentinel")[sentinel_before..];
    assert!(sentinel_sent.iter().all(|r| r == "POST /v1/files"), "{sentinel_sent:?}");
}

#[test]
fn a_pebble_failure_is_one_line_naming_the_container_and_a_retry_resends_what_failed() {
    let mut h = Harness::new();
    let w = redis_workload(6379);
    h.fakes["sentinel"].fail("/v1/layers", Fault::Reply { status_code: 500, message: "disk full".into() });
    let e = h.apply(&w).unwrap_err().to_string();
    assert!(!e.contains('\n') && e.contains("sentinel") && e.contains("disk full"), "{e}");
    assert!(!e.contains(PW));
    // Recorded: redis's files and layer, and sentinel's files; not sentinel's layer.
    assert!(!h.kv.is_data_changed(&layer_key("redis"), &container_layer(&w, "redis").unwrap()));
    assert!(h.kv.is_data_changed(&layer_key("sentinel"), &container_layer(&w, "sentinel").unwrap()));

    h.fakes["sentinel"].clear_faults();
    let (redis_before, sentinel_before) = (h.requests("redis").len(), h.requests("sentinel").len());
    assert_eq!(h.apply(&w).unwrap(), Applied::Changed);
    assert_eq!(h.requests("redis").len(), redis_before, "redis got everything the first time");
    let sent = &h.requests("sentinel")[sentinel_before..];
    assert_eq!(sent[..2], ["POST /v1/layers", "POST /v1/services"], "only the layer is resent");
    assert_eq!(sent.len(), 3);
    assert_eq!(h.fakes["sentinel"].service("sentinel").map(|s| s.current), Some("active".to_owned()));
}

#[test]
fn a_failed_push_records_nothing_for_that_file_and_a_failed_replan_resends_the_layer() {
    let mut h = Harness::new();
    let w = redis_workload(6379);
    h.fakes["redis"].fail("/v1/files", Fault::NotRunning);
    let e = h.apply(&w).unwrap_err().to_string();
    assert!(e.contains("pebble (redis)") && e.contains("not running"), "{e}");
    assert!(h.kv.as_map().keys().all(|k| !k.contains("workload.pebble.")), "nothing recorded");
    assert_eq!(h.requests("sentinel"), Vec::<String>::new(), "stopped at the first failure");

    h.fakes["redis"].clear_faults();
    h.fakes["redis"].fail("/v1/services", Fault::ChangeError("redis exited".into()));
    let e = h.apply(&w).unwrap_err().to_string();
    assert!(e.contains("redis exited"), "{e}");
    assert!(h.kv.is_data_changed(&layer_key("redis"), &container_layer(&w, "redis").unwrap()));

    h.fakes["redis"].clear_faults();
    let before = h.requests("redis").len();
    assert_eq!(h.apply(&w).unwrap(), Applied::Changed);
    let sent = &h.requests("redis")[before..];
    assert_eq!(sent[..2], ["POST /v1/layers", "POST /v1/services"], "{sent:?}");
}

#[test]
fn forget_makes_the_next_apply_send_that_container_everything_again() {
    let mut h = Harness::new();
    let w = redis_workload(6379);
    h.apply(&w).unwrap();
    let (redis_before, sentinel_before) = (h.requests("redis").len(), h.requests("sentinel").len());
    let env = HookEnv::default();
    let mut tools = HookTools::new(Box::new(h.juju.clone()));
    let kv = std::mem::take(&mut h.kv);
    let mut ctx = Ctx::new(
        "redis-pebble-ready",
        &env,
        &mut tools,
        Flags::new(Default::default(), Vec::new()),
        kv,
        State::default(),
    );
    forget(&mut ctx, "redis");
    h.kv = ctx.kv;
    h.apply(&w).unwrap();
    assert_eq!(h.requests("redis").len() - redis_before, 10);
    assert_eq!(h.requests("sentinel").len(), sentinel_before);
}

#[test]
fn a_container_without_a_pebble_is_an_error_before_anything_is_sent() {
    let w = redis_workload(6379);
    let fake = FakePebble::new();
    let mut h = Harness::new();
    h.runtime = PebbleRuntime::new([Pebble::new("redis", Box::new(fake.clone()))]);
    let e = h.apply(&w).unwrap_err().to_string();
    assert!(e.contains("sentinel"), "{e}");
    assert!(fake.requests().is_empty());
}

#[test]
fn a_pushed_file_debugs_without_its_bytes() {
    let f =
        PushedFile { container: "redis", path: "/p".into(), bytes: PW.as_bytes().to_vec(), permissions: "400".into() };
    let shown = format!("{f:?}");
    assert!(!shown.contains(PW) && shown.contains(&format!("{} bytes", PW.len())), "{shown}");
}
