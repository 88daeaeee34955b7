//! Hostile input, generated with proptest: whatever Juju, the operator, a related unit or the disk hands the
//! charm, it never panics and it says what is wrong.
//!
//! - **config** (every option in config.yaml, any JSON: huge, negative, fractional, strings, bools, null,
//!   nested, plus unknown options): the hook succeeds; a bad value gives `blocked "invalid config: <option> …"`
//!   and keeps the last good pod spec, a good one gives `active` and the port in the spec;
//! - **resource content.yaml** (random bytes, non-UTF-8, YAML of any shape, missing keys, wrong types, over
//!   the 64 KiB the charm reads, a billion-laughs bomb): the hook succeeds; unusable content gives
//!   `blocked "unable to fetch resource: redis-image: …"`, never the registry password;
//! - **the image path** (real references, with a shell payload, an invisible character or an argument spliced
//!   in, 70 KB long, any string): a reference goes into the spec's `imagePath` unchanged; anything else blocks
//!   with a short message, no spec and no workload version;
//! - **tool output** (any bytes, JSON of any shape) of every tool whose output the charm reads, in every hook
//!   that calls it, and of every parsing wrapper in `HookTools`: either it is accepted, or the hook fails with
//!   an error naming the tool, the store untouched;
//! - **relation data** from a remote unit (any keys and values): the hook succeeds, what this unit publishes
//!   does not change, and the next hook loads the store;
//! - **the store** (random bytes, truncated or bit-flipped valid files, valid JSON of the wrong types) and its
//!   `state-get` mirror: a store the charm cannot read fails the hook with a clear `flag store …` error and
//!   stays byte-for-byte as it was; it is never silently reset.
//!
//! Each property runs [`cases()`] cases: 64 by default (the whole file takes a few seconds), 4096 with
//! `REDIS_K8S_LONG_TESTS=1`. Failures are not persisted to files; proptest prints the minimal input.

use std::sync::OnceLock;

use crate::support::fake_unit::{self, CleanRun, FakeUnit, SECRET, Step, Tamper};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError};
use redis_k8s::juju::{HookTools, ToolError, ToolRunner};
use redis_k8s::layers::docker_resource::parse_content;
use redis_k8s::reactive::store::decode;
const MIRROR_KEY: &str = redis_k8s::charm::STORE.mirror_key;
use serde_json::{Value, json};

/// Cases per property: 64, or 4096 with `REDIS_K8S_LONG_TESTS=1`.
fn cases() -> u32 {
    if std::env::var_os("REDIS_K8S_LONG_TESTS").is_some_and(|v| v == "1") { 4096 } else { 64 }
}

fn config() -> Config {
    Config { cases: cases(), failure_persistence: None, ..Config::default() }
}

/// One clean lifecycle, shared by every property (snapshots to start cases from).
fn clean() -> &'static CleanRun {
    static CLEAN: OnceLock<CleanRun> = OnceLock::new();
    CLEAN.get_or_init(|| fake_unit::clean_run("hostile-clean"))
}

fn index(step: Step) -> usize {
    Step::LIFECYCLE.iter().position(|s| *s == step).unwrap()
}

// ---- generators ---------------------------------------------------------------------------------------

fn json_leaf() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-70_000i64..140_000).prop_map(Value::from),
        (-70_000i64..140_000).prop_map(|i| json!(i as f64)),
        (-70_000.0f64..140_000.0).prop_map(|f| json!(f)),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        any::<String>().prop_map(Value::String),
        "[0-9 .eE+x-]{0,10}".prop_map(Value::String),
    ]
    .boxed()
}

fn json_any() -> BoxedStrategy<Value> {
    json_leaf()
        .prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A config value: any JSON, with valid ports and the edges of the range mixed in.
fn config_value() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => json_any(),
        1 => (1u16..=u16::MAX).prop_map(Value::from),
        1 => (1u16..=u16::MAX).prop_map(|p| json!(f64::from(p))),
        1 => (0.0f64..70_000.0).prop_map(|f| json!(f)),
        1 => prop::sample::select(vec![
            json!(0), json!(1), json!(65535), json!(65536), json!(-1), json!(65535.5), json!(-0.0), json!(1e300),
            json!("6379"), json!([6379]), json!({"port": 6379}), Value::Null, json!(true),
        ]),
    ]
    .boxed()
}

/// The options config.yaml declares (read at run time, so a new option is fuzzed as soon as it exists).
fn config_options() -> Vec<String> {
    let yaml: serde_yaml::Value = serde_yaml::from_str(redis_k8s::charm::CONFIG_YAML).unwrap();
    yaml["options"].as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_string()).collect()
}

/// Any bytes a tool might print: random, JSON of any shape, JSON with junk after it.
fn tool_output() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        json_any().prop_map(|v| format!("{v}\n").into_bytes()),
        (json_any(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(v, junk)| {
            let mut b = v.to_string().into_bytes();
            b.extend(junk);
            b
        }),
    ]
    .boxed()
}

/// content.yaml candidates: binary junk, YAML documents of any shape (the real keys with values of any
/// type, the registry password among them), broken or truncated YAML, non-UTF-8, and files over 64 KiB.
fn resource_content() -> BoxedStrategy<Vec<u8>> {
    let key = prop_oneof![
        Just("registrypath".to_string()),
        Just("username".to_string()),
        Just("password".to_string()),
        "[a-z]{1,8}",
    ];
    let value = prop_oneof![
        Just(json!("redis:7.0")),
        Just(json!(format!("registry.example.com/redis@sha256:{}", "0123abcd".repeat(8)))),
        Just(json!("registry.example.com/redis@sha256:0123abcd")),
        Just(json!("redis:7.0$(reboot)")),
        Just(json!(SECRET)),
        Just(json!("")),
        Just(json!("a b")),
        json_any(),
    ];
    let doc = prop::collection::btree_map(key, value, 0..5)
        .prop_map(|m| serde_yaml::to_string(&m).unwrap_or_default().into_bytes());
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        doc.clone(),
        (doc.clone(), any::<prop::sample::Index>()).prop_map(|(d, i)| d[..i.index(d.len() + 1)].to_vec()),
        (doc.clone(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(mut d, i, b)| {
            d.insert(i.index(d.len() + 1), 0x80 | b);
            d
        }),
        (65_500usize..66_500).prop_map(|n| {
            let mut d = format!("registrypath: redis:7.0\npassword: {SECRET}\n# ").into_bytes();
            d.resize(n, b'x');
            d.push(b'\n');
            d
        }),
    ]
    .boxed()
}

/// Image paths: real references, references with a shell payload, an invisible character or an argument
/// spliced in, very long ones, and any string.
fn image_path() -> BoxedStrategy<String> {
    let real = prop::sample::select(vec![
        "redis:7.0".to_string(),
        "docker.io/library/redis:7.0".into(),
        "localhost:5000/x/y:tag".into(),
        format!("ghcr.io/a/b@sha256:{}", "0123abcd".repeat(8)),
        format!("registry.example.com:443/a/b:tag@sha256:{}", "0123abcd".repeat(8)),
    ]);
    let payload = prop::sample::select(vec![
        "$(reboot)",
        "`id`",
        "\"",
        "'",
        " --privileged",
        "\u{200b}",
        ";rm -rf /",
        "\n",
        "|",
        "&&",
        "${IFS}",
    ]);
    prop_oneof![
        2 => real.clone(),
        3 => (real.clone(), payload, any::<prop::sample::Index>()).prop_map(|(r, p, i)| {
            let at = i.index(r.len() + 1);
            format!("{}{p}{}", &r[..at], &r[at..])
        }),
        1 => (real, 200usize..70_000).prop_map(|(r, n)| format!("{}{r}", "a/".repeat(n / 2))),
        1 => Just("--privileged".to_string()),
        2 => any::<String>(),
        2 => "[a-zA-Z0-9._:/@-]{1,40}",
    ]
    .boxed()
}

// ---- properties ---------------------------------------------------------------------------------------

/// Whether `v` is a valid `port`: a whole number in 1..=65535 (Juju may send it as a float).
fn valid_port(v: &Value) -> Option<u16> {
    let f = v.as_f64()?;
    (f.fract() == 0.0 && (1.0..=65535.0).contains(&f)).then_some(f as u16)
}

fn check_config(option: &str, value: &Value, extra: &serde_json::Map<String, Value>) -> Result<(), TestCaseError> {
    let clean = clean();
    let mut u = FakeUnit::restore("hostile-config", &clean.before[index(Step::UpdateStatus)]);
    let spec0 = u.model().pod_spec.clone();
    {
        let mut m = u.model();
        for (k, v) in extra {
            m.config.insert(k.clone(), v.clone());
        }
        m.config.insert(option.to_string(), value.clone());
    }
    let r = u.run("config-changed", &u.env.clone(), Vec::new(), None);
    prop_assert!(r.result.is_ok(), "config {option}={value}: the hook failed: {:?}", r.result);
    let (status, msg) = u.model().last_status().map(|(s, m)| (s.to_string(), m.to_string())).unwrap();
    prop_assert!(!msg.contains('\n'), "status message on several lines: {msg:?}");
    if option == "password" {
        // A secret, even when it is wrong: never echoed.
        let shown = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        prop_assert!(shown.len() < 12 || !msg.contains(&shown), "the status shows the password: {msg}");
    }
    let expect_valid = if option == "port" { valid_port(value).map(Some) } else { Some(None) };
    match (status.as_str(), expect_valid) {
        ("active", Some(port)) => {
            if let Some(p) = port {
                prop_assert!(msg.starts_with(&format!("listening on port {p}")), "{}", msg);
                let spec = u.model().pod_spec.clone().unwrap_or_default();
                prop_assert!(spec.contains(&format!("containerPort: {p}\n")), "port {p} not in the spec");
            }
        }
        ("blocked", expect) => {
            prop_assert!(expect.is_none() || option != "port", "valid port {value} was refused: {msg}");
            prop_assert!(msg.starts_with("invalid config: "), "{msg}");
            prop_assert!(msg.contains(&format!("{option} ")), "blocked without naming {option}: {msg}");
            prop_assert_eq!(&u.model().pod_spec, &spec0, "a bad config replaced the last good spec");
        }
        (s, _) => prop_assert!(false, "config {option}={value}: unexpected status {s} {msg:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_config_value_blocks_naming_the_option_or_is_used(
        option in prop::sample::select(config_options()),
        value in config_value(),
        extra in prop::collection::btree_map("[a-z][a-z-]{0,10}", json_any(), 0..3),
    ) {
        let extra: serde_json::Map<String, Value> =
            extra.into_iter().filter(|(k, _)| !config_options().contains(k)).collect();
        check_config(&option, &value, &extra)?;
    }

    #[test]
    fn any_resource_content_blocks_naming_redis_image_or_is_used(content in resource_content()) {
        let clean = clean();
        let mut u = FakeUnit::restore("hostile-resource", &clean.before[index(Step::Install)]);
        u.set_image(&content);
        let r = u.run("install", &u.env.clone(), Vec::new(), None);
        prop_assert!(r.result.is_ok(), "the hook failed: {:?}", r.result);
        let m = u.model();
        let (status, msg) = m.last_status().unwrap();
        let usable = content.len() <= 64 * 1024
            && std::str::from_utf8(&content).ok().and_then(|t| parse_content(t).ok()).is_some();
        if usable {
            prop_assert_eq!(status, "active", "{}", msg);
            prop_assert!(m.pod_spec.is_some());
        } else {
            prop_assert_eq!(status, "blocked", "{}", msg);
            prop_assert!(msg.starts_with("unable to fetch resource: redis-image: "), "{}", msg);
            prop_assert!(!msg.contains('\n'), "status message on several lines: {:?}", msg);
            prop_assert!(m.pod_spec.is_none(), "a spec was sent for an unusable image");
        }
        let leaked = m.statuses.iter().chain(&m.logs).any(|(_, l)| l.contains(SECRET));
        prop_assert!(!leaked, "the registry password reached a status or a log line");
    }

    #[test]
    fn any_image_path_is_a_reference_in_the_spec_or_blocks_without_reaching_it(path in image_path()) {
        let clean = clean();
        let mut u = FakeUnit::restore("hostile-image-path", &clean.before[index(Step::Install)]);
        let doc = serde_yaml::to_string(&json!({"registrypath": path, "username": "", "password": ""})).unwrap();
        u.set_image(doc.as_bytes());
        let r = u.run("install", &u.env.clone(), Vec::new(), None);
        prop_assert!(r.result.is_ok(), "the hook failed: {:?}", r.result);
        let m = u.model();
        let (status, msg) = m.last_status().unwrap();
        let is_ref = redis_k8s::layers::image_ref::parse(&path).is_ok();
        if status == "blocked" {
            prop_assert!(!is_ref || path.trim().is_empty(), "a valid reference was refused: {}", msg);
            prop_assert!(msg.starts_with("unable to fetch resource: redis-image: "), "{}", msg);
            prop_assert!(msg.chars().count() <= 240 && !msg.contains('\n'), "status message too long: {:?}", msg);
            prop_assert!(m.pod_spec.is_none() && m.version.is_none());
        } else {
            prop_assert!(is_ref, "{:?} was accepted: {} {}", path, status, msg);
            let spec: serde_yaml::Value = serde_yaml::from_str(m.pod_spec.as_deref().unwrap_or_default()).unwrap();
            let sent = spec["containers"][0]["imageDetails"]["imagePath"].as_str().map(str::to_string);
            prop_assert_eq!(sent, Some(path.clone()), "not the spec's imagePath");
            let version = m.version.clone().unwrap_or_default();
            prop_assert!(version.chars().all(|c| c.is_ascii_alphanumeric() || "._-:/@[]".contains(c)), "{:?}", version);
        }
    }

    #[test]
    fn any_output_of_a_parsed_tool_is_accepted_or_fails_the_hook_naming_it(
        site in prop::sample::select(parsed_sites()),
        output in tool_output(),
    ) {
        let (i, tool, nth) = site;
        let clean = clean();
        let step = Step::LIFECYCLE[i];
        let mut u = FakeUnit::restore("hostile-output", &clean.before[i]);
        let store0 = u.store_bytes();
        let state0 = u.model().state.clone();
        let env = u.env_for(step);
        // Independent of the charm's parsers: output that is not even JSON (or, for resource-get, not one
        // absolute path) can never be accepted.
        let unusable = if tool == "resource-get" {
            std::str::from_utf8(&output).map_or(true, |t| {
                let t = t.strip_suffix('\n').unwrap_or(t);
                t.is_empty() || t.contains('\n') || !t.starts_with('/')
            })
        } else {
            // Surrounding whitespace of any kind is fine (the charm trims it, e.g. a stray vertical tab).
            std::str::from_utf8(&output).map_or(true, |t| serde_json::from_str::<Value>(t.trim()).is_err())
        };
        let r = u.run(step.hook(), &env, Vec::new(), Some(Tamper { tool: tool.clone(), nth, output }));
        prop_assert!(!(unusable && r.result.is_ok()), "{}: unusable {} output was accepted", step.label(), tool);
        if let Err(e) = r.result {
            let named = e.contains(&format!("{tool} gave unusable output"))
                || (tool == "state-get" && e.contains("flag store mirror"));
            prop_assert!(named, "{}: the error does not name {}: {}", step.label(), tool, e);
            prop_assert!(!e.contains('\n'));
            prop_assert_eq!(u.store_bytes(), store0, "the store changed after a failed hook");
            prop_assert_eq!(&u.model().state, &state0, "the mirror was committed by a failed hook");
        }
    }

    #[test]
    fn every_parsing_wrapper_accepts_or_names_its_tool(output in tool_output()) {
        for (tool, call) in WRAPPERS {
            let mut tools = HookTools::new(Box::new(Canned(output.clone())));
            match call(&mut tools) {
                Ok(()) => {}
                Err(ToolError::BadOutput { tool: t, detail }) => {
                    prop_assert_eq!(t.as_str(), *tool);
                    prop_assert!(!detail.is_empty());
                }
                Err(e) => prop_assert!(false, "{tool}: not a BadOutput error: {e}"),
            }
        }
    }

    #[test]
    fn any_remote_relation_data_leaves_what_this_unit_publishes_alone(
        data in prop::collection::btree_map(any::<String>(), any::<String>(), 0..6),
        big in prop::option::of(1usize..20_000),
    ) {
        let clean = clean();
        let i = index(Step::DbChanged);
        let mut u = FakeUnit::restore("hostile-relation", &clean.before[i]);
        let mut data = data;
        if let Some(n) = big {
            data.insert("big".into(), "x".repeat(n));
        }
        u.model().relations.get_mut(fake_unit::RID).unwrap().units.insert(fake_unit::REMOTE.into(), data.clone());
        let env = u.env_for(Step::DbChanged);
        let r = u.run(Step::DbChanged.hook(), &env, Vec::new(), None);
        prop_assert!(r.result.is_ok(), "remote data {:?}: {:?}", data, r.result);
        prop_assert_eq!(&u.end_state().relations, &clean.after[i].relations);
        let next = u.step(Step::UpgradeImage, Vec::new(), None);
        prop_assert!(next.result.is_ok(), "the next hook failed: {:?}", next.result);
    }

    #[test]
    fn a_store_the_charm_cannot_read_fails_the_hook_and_stays_untouched(bytes in store_bytes()) {
        let clean = clean();
        let i = index(Step::UpdateStatus);
        let mut snap_unit = FakeUnit::restore("hostile-store", &clean.before[i]);
        std::fs::write(snap_unit.store_path(), &bytes).unwrap();
        let state0 = snap_unit.model().state.clone();
        let files0 = snap_unit.end_state().state_files;
        let r = snap_unit.run("update-status", &snap_unit.env.clone(), Vec::new(), None);
        match (decode(&bytes), r.result) {
            (Err(_), Ok(())) => prop_assert!(false, "an unreadable store was accepted"),
            (Err(_), Err(e)) => {
                prop_assert!(e.starts_with("flag store ") && !e.contains('\n'), "unclear error: {}", e);
                prop_assert!(e.contains("corrupt") || e.contains("schema"), "unclear error: {}", e);
            }
            (Ok(_), Ok(())) => return Ok(()),
            (Ok(_), Err(e)) => prop_assert!(!e.contains('\n'), "{}", e),
        }
        prop_assert_eq!(snap_unit.store_bytes(), Some(bytes), "the store was rewritten by a failed hook");
        prop_assert_eq!(snap_unit.end_state().state_files, files0);
        prop_assert_eq!(&snap_unit.model().state, &state0, "the mirror was replaced by a failed hook");
    }

    #[test]
    fn a_mirror_the_charm_cannot_read_fails_the_hook_and_writes_no_store(bytes in store_bytes()) {
        let clean = clean();
        let i = index(Step::UpdateStatus);
        let mut u = FakeUnit::restore("hostile-mirror", &clean.before[i]);
        std::fs::remove_file(u.store_path()).unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        u.model().state.insert(MIRROR_KEY.into(), text.clone());
        let r = u.run("update-status", &u.env.clone(), Vec::new(), None);
        if text.is_empty() {
            // An empty value is no mirror at all: the unit starts afresh, as a new one would.
            return Ok(());
        }
        match (decode(text.as_bytes()), r.result) {
            (Err(_), Ok(())) => prop_assert!(false, "an unreadable mirror was accepted"),
            (Err(_), Err(e)) => {
                prop_assert!(e.contains("flag store mirror") && !e.contains('\n'), "unclear error: {}", e);
                prop_assert!(u.store_bytes().is_none(), "a store file was written by a failed hook");
                let mirror = u.model().state.get(MIRROR_KEY).cloned();
                prop_assert_eq!(mirror, Some(text), "the mirror was replaced");
            }
            _ => {}
        }
    }
}

/// Store candidates: random bytes, a valid store truncated or with one byte changed, JSON of wrong types.
fn store_bytes() -> BoxedStrategy<Vec<u8>> {
    let valid = || clean().before[index(Step::UpdateStatus)].clone();
    let valid_bytes = {
        let u = FakeUnit::restore("hostile-store-seed", &valid());
        u.store_bytes().unwrap()
    };
    let (v1, v2) = (valid_bytes.clone(), valid_bytes);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        any::<prop::sample::Index>().prop_map(move |i| v1[..i.index(v1.len())].to_vec()),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(move |(i, b)| {
            let mut v = v2.clone();
            let k = i.index(v.len());
            v[k] = if v[k] == b { b.wrapping_add(1) } else { b };
            v
        }),
        (prop_oneof![Just(json!(1)), json_any()], json_any(), json_any()).prop_map(|(schema, flags, kv)| {
            json!({"schema": schema, "flags": flags, "kv": kv}).to_string().into_bytes()
        }),
    ]
    .boxed()
}

/// Every call site of a tool whose stdout the charm parses, in the clean lifecycle: `(step, tool, nth)`.
fn parsed_sites() -> Vec<(usize, String, usize)> {
    let clean = clean();
    let mut out = Vec::new();
    for (i, r) in clean.results.iter().enumerate() {
        for (tool, nth) in r.call_sites() {
            if crate::support::JSON_TOOLS.contains(&tool.as_str()) || tool == "resource-get" {
                out.push((i, tool, nth));
            }
        }
    }
    assert!(out.len() >= 10, "too few parsed call sites: {out:?}");
    out
}

/// A runner that prints the same bytes for any tool.
struct Canned(Vec<u8>);

impl ToolRunner for Canned {
    fn run(&mut self, _tool: &str, _args: &[&str], _stdin: Option<&[u8]>) -> Result<Vec<u8>, ToolError> {
        Ok(self.0.clone())
    }
}

type Wrapper = fn(&mut HookTools) -> Result<(), ToolError>;

/// Every `HookTools` method that parses a tool's output, whether or not the charm calls it yet.
const WRAPPERS: &[(&str, Wrapper)] = &[
    ("config-get", |t| t.config().map(drop)),
    ("is-leader", |t| t.is_leader().map(drop)),
    ("leader-get", |t| t.leader_get().map(drop)),
    ("resource-get", |t| t.resource_get("redis-image").map(drop)),
    ("status-get", |t| t.status_get().map(drop)),
    ("network-get", |t| t.ingress_address("db").map(drop)),
    ("relation-ids", |t| t.relation_ids("db").map(drop)),
    ("relation-list", |t| t.relation_list("db:3").map(drop)),
    ("relation-get", |t| t.relation_get("db:3", "client/0").map(drop)),
    ("relation-get", |t| t.relation_get_app("db:3", "client").map(drop)),
    ("state-get", |t| t.state_get_all().map(drop)),
    ("state-get", |t| t.state_get(MIRROR_KEY).map(drop)),
    ("action-get", |t| t.action_get().map(drop)),
];

/// The classic billion-laughs document, with `registrypath` pointing at the last alias. serde_yaml
/// refuses to expand it; the hook must come back (blocked) promptly, not hang or exhaust memory.
#[test]
fn a_yaml_bomb_in_content_yaml_blocks_without_expanding() {
    let mut bomb = String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    let names: Vec<char> = ('b'..='i').collect();
    let mut prev = 'a';
    for n in &names {
        bomb.push_str(&format!(
            "{n}: &{n} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
        prev = *n;
    }
    bomb.push_str(&format!("registrypath: *{prev}\n"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let clean = clean();
        let mut u = FakeUnit::restore("hostile-bomb", &clean.before[index(Step::Install)]);
        u.set_image(bomb.as_bytes());
        let r = u.run("install", &u.env.clone(), Vec::new(), None);
        let status = u.model().last_status().map(|(s, m)| (s.to_string(), m.to_string()));
        let _ = tx.send((r.result, status));
    });
    let (result, status) =
        rx.recv_timeout(std::time::Duration::from_secs(60)).expect("a YAML bomb kept the hook busy for 60 s");
    assert!(result.is_ok(), "{result:?}");
    let (s, msg) = status.unwrap();
    assert_eq!(s, "blocked", "{msg}");
    assert!(msg.starts_with("unable to fetch resource: redis-image: "), "{msg}");
}

#[test]
fn the_generators_reach_both_outcomes() {
    // A property that only ever sees rejected input proves little: check the config and resource
    // generators produce accepted values too, and report how many cases each property runs.
    let mut runner = proptest::test_runner::TestRunner::new(config());
    let (mut good, mut bad) = (0, 0);
    for _ in 0..400 {
        let v = config_value().new_tree(&mut runner).unwrap().current();
        if valid_port(&v).is_some() { good += 1 } else { bad += 1 }
    }
    assert!(good >= 5 && bad >= 5, "port values: {good} valid, {bad} invalid");
    let (mut good, mut bad) = (0, 0);
    for _ in 0..400 {
        let c = resource_content().new_tree(&mut runner).unwrap().current();
        let ok = c.len() <= 65536 && std::str::from_utf8(&c).ok().and_then(|t| parse_content(t).ok()).is_some();
        if ok { good += 1 } else { bad += 1 }
    }
    assert!(good >= 5 && bad >= 5, "content.yaml: {good} usable, {bad} unusable");
    let (mut good, mut bad) = (0, 0);
    for _ in 0..400 {
        let p = image_path().new_tree(&mut runner).unwrap().current();
        if redis_k8s::layers::image_ref::parse(&p).is_ok() { good += 1 } else { bad += 1 }
    }
    assert!(good >= 5 && bad >= 5, "image paths: {good} references, {bad} not");
    eprintln!("hostile input: {} cases per property x 8 properties = {} generated cases", cases(), cases() * 8);
}
