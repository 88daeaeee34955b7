//! Soak test: the built `redis-k8s.charm` on juju-local through a long, seeded, random sequence of what
//! operators and the cluster do to it, checking after **every** step that what the model says is true.
//!
//! Step kinds (drawn at random, weighted; in the default run every kind comes once, in a random order,
//! before the rest are drawn): good config (`port`, `maxmemory`, `maxmemory-policy`, `appendonly`,
//! `appendfsync`, `save`), bad config (port 70000/0/26379, junk maxmemory, unknown policy, bad `save`),
//! values the controller refuses (`port=abc`, `appendonly=maybe`), `config --reset`, a leader change
//! (scale to zero and back: a StatefulSet unit cannot be removed by name), a client relation, scale up/down, image changes (a new
//! tag, or a YAML resource file with registrypath/username/password, or a file the controller refuses),
//! a hook failure and its retry (the unit's flag store corrupted under it: the next hook fails, the unit
//! shows `error`, `resolved` fails again until the store is back, then succeeds), a lost flag store
//! (restored from Juju's state mirror), `kill -9` of a pod's redis-server (the kubelet restarts it) and
//! `run-hook … update-status`.
//!
//! After each step, with bounded waits (each poll at most 30 s, never a wall-clock assertion):
//! 1. the committed pod spec renders the last **good** config (and the image current at that time):
//!    container port, every redis.conf line, the image details;
//! 2. every unit's Redis answers PING on that port with the password `get-password` gives (which never
//!    changes, across leader changes and scaling to zero), refuses a client without it (NOAUTH), and
//!    `CONFIG GET` shows the same values;
//! 3. `status --format json` tells the truth: `blocked` naming exactly the options with bad values (and
//!    the values), else `active "listening on port N"` (with the non-leader and related-client wording);
//!    one leader, the workload version of the image, every agent `idle`, never `error` after a step;
//! 4. every client relation names a host and the current port for both client families
//!    (`show-relation` views), with the password for the reactive family;
//! 5. the host clients are given is a pod of the application and takes a write (or, with `maxmemory`
//!    set, refuses it with OOM: a primary enforcing the limit); the leader's `update-status`, which Juju
//!    runs periodically, is run while waiting for a failover to settle.
//!
//! The first runs found three bugs, each now fixed and kept as a regression test at the end of this file
//! (juju-local named StatefulSet pods after unit numbers; `get-password` failed while an unrelated option
//! was bad; a client relating while the config was blocked got no host/port). The soak is strict about
//! them; `REDIS_K8S_SOAK_LENIENT=1` restores the old tolerance, for bisecting older builds.
//!
//! Run: the default `cargo test` runs 25 steps with at most 2 units (`make test`). The long mode,
//! 300 steps with up to 3 units, stops drawing steps after about 10 minutes:
//!
//! ```sh
//! make charm && cargo build -p juju-local
//! REDIS_K8S_LONG_TESTS=1 cargo test --test soak -- --nocapture
//! ```
//!
//! The seed is printed first (`soak: seed 0x…`) and in every failure; `REDIS_K8S_SOAK_SEED=0x…` replays
//! a run step for step, `REDIS_K8S_SOAK_STEPS=N` overrides the number of steps, `REDIS_K8S_SOAK_KEEP=1` keeps
//! a failed run's model directory (as `<dir>.kept`). Needs root, redis-server,
//! bwrap and ip, like `tests/e2e_local.rs`, so it is a test target of its own: without them every test fails
//! first with one line naming what is missing; each run uses its own model dir and destroys it, even when
//! it fails.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::local::{charm, juju_local};

use redis_k8s::redis::config::MaxmemoryPolicy;
use redis_k8s::redis::resp;
use serde_json::Value;

const APP: &str = "redis-k8s";
/// The longest any check waits for the model to settle. Above 30 s: a Sentinel whose timer sees a stall of the
/// machine (a loaded CI host) enters TILT mode for 30 s, during which it fails nothing over (sentinel.c,
/// SENTINEL_TILT_PERIOD), and a rolling restart that needs a failover waits it out, as it would on a cluster.
const SETTLE: Duration = Duration::from_secs(60);
const STORE_FILE: &str = "redis-k8s-reactive.json";

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

// ---------------------------------------------------------------------------------------------------
// A seeded PRNG (splitmix64): no dependency, the same sequence on every machine.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn seed() -> u64 {
    if let Ok(s) = std::env::var("REDIS_K8S_SOAK_SEED") {
        let s = s.trim();
        let parsed = match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => s.parse(),
        };
        return parsed.unwrap_or_else(|_| panic!("REDIS_K8S_SOAK_SEED={s:?} is not a number"));
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    nanos ^ (u64::from(std::process::id()) << 32)
}

// ---------------------------------------------------------------------------------------------------
// The juju-local harness (as in tests/e2e_local.rs), with the run's seed in every failure.

struct Model {
    dir: PathBuf,
    /// Resource files the steps write, removed with the model.
    files: PathBuf,
    seed: u64,
}

impl Model {
    /// Fails the test with one line first when the machine cannot run pods (`support::local::require_pods`).
    fn new(tag: &str, seed: u64) -> Model {
        support::local::require_pods("soak");
        let dir = std::env::temp_dir().join(format!("redis-k8s-soak-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let files = dir.with_extension("files");
        let _ = std::fs::remove_dir_all(&files);
        std::fs::create_dir_all(&files).unwrap();
        Model { dir, files, seed }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(juju_local()).arg("--model-dir").arg(&self.dir).args(args).output().unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        if !out.status.success() {
            self.fail(&format!(
                "juju-local {args:?} failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command that must fail; returns its stderr.
    fn refused(&self, args: &[&str]) -> String {
        let out = self.run(args);
        if out.status.success() {
            self.fail(&format!("juju-local {args:?} succeeded, expected a refusal"));
        }
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Panics with the seed, the model status and the end of the unit logs.
    fn fail(&self, msg: &str) -> ! {
        let status = String::from_utf8_lossy(&self.run(&["status"]).stdout).into_owned();
        // The last lines of each current unit's log (removed units' logs stay in the model dir).
        let model: Value = std::fs::read_to_string(self.dir.join("model.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        let numbers: Vec<String> =
            model["apps"][APP]["units"].as_object().map(|u| u.keys().cloned().collect()).unwrap_or_default();
        let mut tail: Vec<String> = Vec::new();
        for n in numbers {
            let log =
                String::from_utf8_lossy(&self.run(&["debug-log", "--unit", &format!("{APP}/{n}")]).stdout).into_owned();
            let lines: Vec<&str> = log.lines().collect();
            tail.extend(lines[lines.len().saturating_sub(15)..].iter().map(|l| l.to_string()));
        }
        let events = String::from_utf8_lossy(&self.run(&["events"]).stdout).into_owned();
        let events: Vec<&str> = events.lines().collect();
        let events = events[events.len().saturating_sub(40)..].join("\n");
        // The end of every container's log: what the start scripts said they were waiting for.
        let mut containers = String::new();
        let mut pods: Vec<PathBuf> = std::fs::read_dir(self.dir.join("pods"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        pods.sort();
        for pod in pods {
            let mut logs: Vec<PathBuf> = std::fs::read_dir(pod.join("logs"))
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            logs.sort();
            for log in logs {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                containers.push_str(&format!(
                    "== {} ==\n{}\n",
                    log.strip_prefix(&self.dir).unwrap_or(&log).display(),
                    lines[lines.len().saturating_sub(12)..].join("\n")
                ));
            }
        }
        panic!(
            "{msg}\n--- replay with REDIS_K8S_SOAK_SEED={:#x} ---\n--- status ---\n{status}\n--- debug-log (tail) ---\n{}\n\
             --- kubelet events (tail) ---\n{events}\n--- container logs (tails) ---\n{containers}",
            self.seed,
            tail.join("\n")
        );
    }

    fn check(&self, cond: bool, msg: impl FnOnce() -> String) {
        if !cond {
            self.fail(&msg());
        }
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--format", "json"])).unwrap()
    }

    fn model_json(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.dir.join("model.json")).unwrap()).unwrap()
    }

    fn action(&self, unit: &str, action: &str) -> serde_yaml::Value {
        support::local::action_result(&self.ok(&["run-action", unit, action]), unit)
    }

    /// get-password's answer. Actions run in the workload pod: one whose pod is replaced while it runs (a rolling
    /// update) is `failed` with "action terminated", as on Juju, and an operator runs it again; so does this, at
    /// most twice, after the application settles.
    fn password(&self, unit: &str) -> String {
        let mut tries = 0;
        loop {
            let r = self.action(unit, "get-password");
            if let Some(p) = r["results"]["password"].as_str() {
                return p.to_string();
            }
            let terminated =
                r["status"].as_str() == Some("failed") && r["message"].as_str() == Some("action terminated");
            if !terminated || tries == 2 {
                self.fail(&format!("get-password on {unit} gave {r:?}"));
            }
            tries += 1;
            let _ = self.run(&["wait", APP, "--timeout", "60"]);
        }
    }

    fn store(&self, n: u32) -> PathBuf {
        self.dir.join("agents").join(format!("unit-{APP}-{n}")).join("state").join(STORE_FILE)
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        if std::thread::panicking() && env_flag("REDIS_K8S_SOAK_KEEP") {
            // Processes stopped, files kept for a post-mortem (`juju-local destroy` removes the rest).
            let _ = std::fs::copy(self.dir.join("model.json"), self.files.join("model.json"));
            let _ = Command::new("cp").arg("-a").arg(&self.dir).arg(self.dir.with_extension("kept")).status();
            eprintln!("soak: model kept at {}", self.dir.with_extension("kept").display());
        }
        let _ = self.run(&["destroy"]);
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(&self.files);
    }
}

// ---------------------------------------------------------------------------------------------------
// The oracle: what the test has set, and what the charm must therefore show.

/// The options the soak drives, in the order the charm names them in a blocked message.
const OPTIONS: [&str; 6] = ["port", "appendonly", "appendfsync", "save", "maxmemory", "maxmemory-policy"];
const DEFAULTS: [&str; 6] = ["6379", "true", "everysec", "3600 1 300 100 60 10000", "", "noeviction"];
/// Redis's eviction policies, as the charm names them (its own config test pins the eight names).
static POLICIES: std::sync::LazyLock<Vec<&'static str>> =
    std::sync::LazyLock::new(|| MaxmemoryPolicy::ALL.iter().map(|p| p.as_str()).collect());

/// Values the charm accepts, per option (ports are drawn separately).
fn good_values(opt: &str) -> &'static [&'static str] {
    match opt {
        "appendonly" => &["true", "false"],
        "appendfsync" => &["always", "everysec", "no"],
        "save" => &["900 1", "3600 1 300 100 60 10000", "60 1000 300 10", "3600 1"],
        "maxmemory" => &["0", "64mb", "100m", "1gb", "512kb", "2000000", "256MB", "1G"],
        "maxmemory-policy" => POLICIES.as_slice(),
        _ => unreachable!("{opt}"),
    }
}

/// Values the controller stores but the charm must refuse, per option.
fn bad_values(opt: &str) -> &'static [&'static str] {
    match opt {
        "port" => &["70000", "0", "26379"],
        "appendfsync" => &["sometimes"],
        "save" => &["60", "0 1", "abc def"],
        "maxmemory" => &["12qb", "lots", "1.5gb", "-5mb"],
        "maxmemory-policy" => &["lru", "allkeys-LRU", "evict-everything"],
        _ => unreachable!("{opt}"),
    }
}

/// The test's own reading of a size (`parse_size` in the charm): digits and an optional unit.
fn size_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() {
        return Some(0);
    }
    let end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(end);
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

fn save_points(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    let ok = words.len().is_multiple_of(2)
        && words.iter().all(|w| w.bytes().all(|b| b.is_ascii_digit()) && w.parse::<u32>().is_ok_and(|n| n >= 1));
    ok.then(|| words.join(" "))
}

fn valid(opt: &str, raw: &str) -> bool {
    match opt {
        "port" => raw.parse::<i64>().is_ok_and(|p| (1..=65535).contains(&p) && p != 26379),
        "appendonly" => matches!(raw, "true" | "false"),
        "appendfsync" => matches!(raw, "always" | "everysec" | "no"),
        "save" => save_points(raw).is_some(),
        "maxmemory" => size_bytes(raw).is_some(),
        "maxmemory-policy" => POLICIES.contains(&raw),
        _ => unreachable!("{opt}"),
    }
}

/// A config the charm accepted: what Redis must run with.
#[derive(Clone, Debug, PartialEq)]
struct Good {
    port: u16,
    appendonly: bool,
    appendfsync: String,
    save: String,
    maxmemory: u64,
    policy: String,
}

#[derive(Clone, Debug, PartialEq)]
struct Image {
    path: String,
    username: String,
    password: String,
}

impl Image {
    fn plain(path: &str) -> Image {
        Image { path: path.into(), username: String::new(), password: String::new() }
    }

    /// The workload version the charm shows: the tag of the last path component.
    fn version(&self) -> String {
        let last = self.path.rsplit('/').next().unwrap_or(&self.path);
        last.split_once(':').map(|(_, t)| t.to_string()).unwrap_or_else(|| "latest".into())
    }
}

const IMAGES: [&str; 4] =
    ["redis:7.0", "redis:7.2.4", "registry.example.com/library/redis:7.2", "docker.io/library/redis:6.2.14"];

#[derive(Clone, Debug)]
struct Client {
    /// `db:N`
    rid: String,
    /// The units that have had a good config while in the relation: the ones that published.
    published: BTreeSet<String>,
}

struct Oracle {
    /// Options the test set (source "user"), as typed.
    set: BTreeMap<&'static str, String>,
    /// The last config the charm accepted, and the image current then: what the spec renders.
    good: Good,
    spec_image: Image,
    /// The `redis-image` resource now, and the argument that set it (a path or a file).
    image: Image,
    image_arg: String,
    units: usize,
    /// The client relations.
    clients: Vec<Client>,
    password: Option<String>,
}

impl Oracle {
    fn new(units: usize) -> Oracle {
        let mut o = Oracle {
            set: BTreeMap::new(),
            good: Good {
                port: 0,
                appendonly: true,
                appendfsync: String::new(),
                save: String::new(),
                maxmemory: 0,
                policy: String::new(),
            },
            spec_image: Image::plain(IMAGES[0]),
            image: Image::plain(IMAGES[0]),
            image_arg: IMAGES[0].to_string(),
            units,
            clients: Vec::new(),
            password: None,
        };
        o.settle();
        o
    }

    fn effective(&self, opt: &str) -> String {
        let i = OPTIONS.iter().position(|o| *o == opt).unwrap();
        self.set.get(opt).cloned().unwrap_or_else(|| DEFAULTS[i].to_string())
    }

    /// The options whose value the charm refuses, in the order it names them.
    fn bad(&self) -> Vec<&'static str> {
        OPTIONS.iter().copied().filter(|o| !valid(o, &self.effective(o))).collect()
    }

    /// After a step: a valid config is what the charm renders now, with the current image.
    fn settle(&mut self) {
        if !self.bad().is_empty() {
            return;
        }
        self.good = Good {
            port: self.effective("port").parse().unwrap(),
            appendonly: self.effective("appendonly") == "true",
            appendfsync: self.effective("appendfsync"),
            save: save_points(&self.effective("save")).unwrap(),
            maxmemory: size_bytes(&self.effective("maxmemory")).unwrap(),
            policy: self.effective("maxmemory-policy"),
        };
        self.spec_image = self.image.clone();
    }

    fn good_port(&self, rng: &mut Rng) -> String {
        loop {
            let p = if rng.chance(15) { 6379 } else { 2000 + rng.below(38_000) };
            if p != 26379 && p.to_string() != self.effective("port") {
                return p.to_string();
            }
        }
    }

    fn good_value(&self, opt: &str, rng: &mut Rng) -> String {
        if opt == "port" {
            return self.good_port(rng);
        }
        let current = self.effective(opt);
        let choices: Vec<&str> = good_values(opt).iter().copied().filter(|v| *v != current).collect();
        rng.pick(&choices).to_string()
    }
}

// ---------------------------------------------------------------------------------------------------
// Steps.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    ConfigGood,
    ConfigBad,
    ConfigRefused,
    Reset,
    LeaderChange,
    Relate,
    ScaleUp,
    ScaleDown,
    ImageTag,
    ImageFile,
    ImageRefused,
    HookFailureRetry,
    LostStore,
    KillRedis,
    UpdateStatus,
    /// Remove the application and deploy it again with the valid options and the image; only after a
    /// step left the units numbered other than 0..N-1 (the juju-local BUG), never drawn otherwise.
    Redeploy,
}

const KINDS: [(Kind, usize); 15] = [
    (Kind::ConfigGood, 20),
    (Kind::ConfigBad, 12),
    (Kind::ConfigRefused, 3),
    (Kind::Reset, 8),
    (Kind::LeaderChange, 5),
    (Kind::Relate, 3),
    (Kind::ScaleUp, 6),
    (Kind::ScaleDown, 6),
    (Kind::ImageTag, 5),
    (Kind::ImageFile, 3),
    (Kind::ImageRefused, 2),
    (Kind::HookFailureRetry, 5),
    (Kind::LostStore, 3),
    (Kind::KillRedis, 5),
    (Kind::UpdateStatus, 8),
];

const MAX_CLIENTS: usize = 2;

struct Soak {
    m: Model,
    o: Oracle,
    rng: Rng,
    max_units: usize,
    strict: bool,
    /// Steps after which check 5 could not run (pods not numbered 0..N-1).
    skipped_write_checks: usize,
    /// Times get-password refused while an unrelated option was bad (the charm BUG).
    password_refusals: usize,
    /// Unit bags found without address while blocked (the charm BUG).
    unpublished: usize,
    step: usize,
}

/// What `status --format json` says about one unit.
struct UnitInfo {
    name: String,
    number: u32,
    /// The pod's StatefulSet ordinal (`<app>-<pod>`), which need not be the unit number.
    pod: u32,
    address: String,
    leader: bool,
}

impl Soak {
    fn possible(&self, k: Kind) -> bool {
        match k {
            Kind::Relate => self.o.clients.len() < MAX_CLIENTS,
            Kind::ScaleUp => self.o.units < self.max_units,
            Kind::ScaleDown => self.o.units > 1,
            Kind::Redeploy => false,
            _ => true,
        }
    }

    fn draw(&mut self) -> Kind {
        let live: Vec<(Kind, usize)> = KINDS.iter().copied().filter(|(k, _)| self.possible(*k)).collect();
        let total: usize = live.iter().map(|(_, w)| w).sum();
        let mut x = self.rng.below(total);
        for (k, w) in live {
            if x < w {
                return k;
            }
            x -= w;
        }
        unreachable!()
    }

    fn units(&self) -> Vec<UnitInfo> {
        let st = self.m.status();
        let mut out: Vec<UnitInfo> = st["applications"][APP]["units"]
            .as_object()
            .map(|units| {
                units
                    .iter()
                    .map(|(name, u)| UnitInfo {
                        name: name.clone(),
                        number: name.rsplit('/').next().unwrap().parse().unwrap(),
                        pod: 0,
                        address: u["address"].as_str().unwrap_or_default().to_string(),
                        leader: u["leader"].as_bool().unwrap_or(false),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let model = self.m.model_json();
        for u in &mut out {
            let rec = &model["apps"][APP]["units"][u.number.to_string()];
            u.pod = rec["ordinal"].as_u64().map(|o| o as u32).unwrap_or(u.number);
        }
        out.sort_by_key(|u| u.number);
        out
    }

    fn leader(&self) -> UnitInfo {
        let mut units = self.units();
        match units.iter().position(|u| u.leader) {
            Some(i) => units.swap_remove(i),
            None => self.m.fail("no unit is the leader"),
        }
    }

    fn config_set(&mut self, opt: &'static str, value: String) -> String {
        self.m.ok(&["config", APP, &format!("{opt}={value}")]);
        let d = format!("{opt}={value}");
        self.o.set.insert(opt, value);
        d
    }

    /// Runs one step of kind `k`; returns a description for the log.
    fn apply(&mut self, k: Kind) -> String {
        match k {
            Kind::ConfigGood => {
                // Half the time, fix an option that is bad now.
                let bad = self.o.bad();
                let opt = if !bad.is_empty() && self.rng.chance(50) {
                    *self.rng.pick(&bad)
                } else {
                    *self.rng.pick(&OPTIONS)
                };
                let v = self.o.good_value(opt, &mut self.rng);
                self.config_set(opt, v)
            }
            Kind::ConfigBad => {
                let opt = *self.rng.pick(&["port", "maxmemory", "maxmemory-policy", "save", "appendfsync"]);
                let v = self.rng.pick(bad_values(opt)).to_string();
                self.config_set(opt, v)
            }
            Kind::ConfigRefused => {
                let (opt, raw, kind) = *self.rng.pick(&[("port", "abc", "int"), ("appendonly", "maybe", "boolean")]);
                let before = self.m.ok(&["config", APP, opt]);
                let err = self.m.refused(&["config", APP, &format!("{opt}={raw}")]);
                self.m.check(err.contains(&format!("ERROR option \"{opt}\" expected {kind}, got \"{raw}\"")), || {
                    format!("config {opt}={raw}: {err}")
                });
                let after = self.m.ok(&["config", APP, opt]);
                self.m.check(before == after, || format!("a refused {opt}={raw} changed {before:?} to {after:?}"));
                format!("{opt}={raw} (refused by the controller)")
            }
            Kind::Reset => {
                let bad = self.o.bad();
                let mut keys: Vec<&'static str> = if !bad.is_empty() && self.rng.chance(60) {
                    bad
                } else if !self.o.set.is_empty() {
                    let set: Vec<&'static str> = self.o.set.keys().copied().collect();
                    vec![*self.rng.pick(&set)]
                } else {
                    vec![*self.rng.pick(&OPTIONS)]
                };
                if self.rng.chance(30) {
                    keys.push(*self.rng.pick(&OPTIONS));
                }
                keys.sort_unstable();
                keys.dedup();
                let list = keys.join(",");
                self.m.ok(&["config", APP, "--reset", &list]);
                for key in &keys {
                    self.o.set.remove(key);
                }
                format!("--reset {list}")
            }
            Kind::LeaderChange => {
                // On Kubernetes a StatefulSet's unit cannot be removed by name; the leader changes when its
                // pod goes, e.g. scaling to zero and back (the password must survive that too).
                let leader = self.leader();
                self.m.ok(&["scale", APP, "0"]);
                self.m.ok(&["scale", APP, &self.o.units.to_string()]);
                let now = self.leader();
                self.m.check(now.number != leader.number, || format!("{} is still the leader", leader.name));
                format!("scaled to 0 and back to {}; {} led, {} leads", self.o.units, leader.name, now.name)
            }
            Kind::Relate => {
                let client = if self.o.clients.is_empty() { "client".to_string() } else { "client2".to_string() };
                let out = self.m.ok(&["relate", &format!("{APP}:db"), &client]);
                let v: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
                let Some(id) = v["relation-id"].as_u64() else { self.m.fail(&format!("relate printed {out}")) };
                self.o.clients.push(Client { rid: format!("db:{id}"), published: BTreeSet::new() });
                format!("{client} related as db:{id}")
            }
            Kind::ScaleUp | Kind::ScaleDown => {
                let n = if k == Kind::ScaleUp {
                    self.o.units + 1 + self.rng.below(self.max_units - self.o.units)
                } else {
                    1 + self.rng.below(self.o.units - 1)
                };
                self.m.ok(&["scale", APP, &n.to_string()]);
                self.o.units = n;
                format!("to {n}")
            }
            Kind::ImageTag => {
                let choices: Vec<&str> = IMAGES.iter().copied().filter(|i| *i != self.o.image.path).collect();
                let path = *self.rng.pick(&choices);
                self.m.ok(&["attach-resource", APP, &format!("redis-image={path}")]);
                self.o.image = Image::plain(path);
                self.o.image_arg = path.to_string();
                path.to_string()
            }
            Kind::ImageFile => {
                let path = *self.rng.pick(&IMAGES);
                let image = Image {
                    path: path.into(),
                    username: format!("robot{}", self.rng.below(100)),
                    password: format!("registry-pw-{:016x}", self.rng.next()),
                };
                let file = self.m.files.join(format!("image-{}.yaml", self.step));
                std::fs::write(
                    &file,
                    format!(
                        "registrypath: {}\nusername: {}\npassword: {}\n",
                        image.path, image.username, image.password
                    ),
                )
                .unwrap();
                self.m.ok(&["attach-resource", APP, &format!("redis-image={}", file.display())]);
                let d = format!("{} as {} (file)", image.path, image.username);
                self.o.image = image;
                self.o.image_arg = file.display().to_string();
                d
            }
            Kind::ImageRefused => {
                let file = self.m.files.join(format!("image-{}.yaml", self.step));
                std::fs::write(&file, "registrypath: \"\"\nusername: robot\npassword: no-path-given-here\n").unwrap();
                let err = self.m.refused(&["attach-resource", APP, &format!("redis-image={}", file.display())]);
                self.m.check(err.contains("docker image path \"\" not valid"), || format!("attach-resource: {err}"));
                "a file with an empty registrypath (refused)".into()
            }
            Kind::HookFailureRetry => self.hook_failure_retry(),
            Kind::LostStore => {
                let units = self.units();
                let u = self.rng.pick(&units);
                let store = self.m.store(u.number);
                std::fs::remove_file(&store).unwrap_or_else(|e| self.m.fail(&format!("{}: {e}", store.display())));
                self.m.ok(&["run-hook", &u.name, "update-status"]);
                format!("{}'s flag store deleted; update-status restored it from the state mirror", u.name)
            }
            Kind::KillRedis => self.kill_redis(),
            Kind::Redeploy => self.redeploy(),
            Kind::UpdateStatus => {
                let units = self.units();
                let u = &self.rng.pick(&units).name;
                self.m.ok(&["run-hook", u, "update-status"]);
                u.clone()
            }
        }
    }

    /// Corrupts a unit's flag store, then changes the port: that unit's config-changed fails and it
    /// shows `error`; `resolved` fails again while the store is corrupt, and succeeds once it is back.
    fn hook_failure_retry(&mut self) -> String {
        let units = self.units();
        let u = self.rng.pick(&units);
        let (name, number) = (u.name.clone(), u.number);
        let store = self.m.store(number);
        let saved = std::fs::read(&store).unwrap_or_else(|e| self.m.fail(&format!("{}: {e}", store.display())));
        std::fs::write(&store, b"{ \"schema\": 1, \"flags\": ").unwrap();
        let port = self.o.good_port(&mut self.rng);
        self.m.ok(&["config", APP, &format!("port={port}")]);
        self.o.set.insert("port", port.clone());
        let st = self.m.status();
        let agent = &st["applications"][APP]["units"][&name]["juju-status"];
        self.m.check(agent["current"] == "error" && agent["message"] == "hook failed: \"config-changed\"", || {
            format!("{name} with a corrupt flag store: agent {agent}")
        });
        let err = self.m.refused(&["resolved", &name]);
        self.m.check(err.contains("hook failed"), || format!("resolved with the store still corrupt: {err}"));
        std::fs::write(&store, &saved).unwrap();
        self.m.ok(&["resolved", &name]);
        format!("{name}'s flag store corrupted, port={port}: error, retried and resolved")
    }

    /// Remove the application and deploy it again: the valid options the test set, the current image, as
    /// many units. A new application: a new password, no client relations.
    fn redeploy(&mut self) -> String {
        self.m.ok(&["remove", APP]);
        let bad = self.o.bad();
        self.o.set.retain(|k, _| !bad.contains(k));
        let charm = charm();
        let mut args: Vec<String> = vec![
            "deploy".into(),
            charm.display().to_string(),
            "--resource".into(),
            format!("redis-image={}", self.o.image_arg),
            "-n".into(),
            self.o.units.to_string(),
        ];
        for (k, v) in &self.o.set {
            args.extend(["--config".into(), format!("{k}={v}")]);
        }
        self.m.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        self.o.password = None;
        self.o.clients.clear();
        format!("{} units with {:?} (dropped bad {bad:?})", self.o.units, self.o.set)
    }

    /// Whether the units are numbered 0..N-1, as StatefulSet pods are (and the charm assumes).
    fn ordinals_ok(&self) -> bool {
        let mut pods: Vec<u32> = self.units().iter().map(|u| u.pod).collect();
        pods.sort_unstable();
        let n = pods.len() as u32;
        pods.into_iter().eq(0..n)
    }

    /// kill -9 of a pod's redis-server; the next juju-local command's kubelet restarts the pod.
    fn kill_redis(&mut self) -> String {
        // A pod killed again soon after a restart waits out CrashLoopBackOff (10 s, then 20 s, …):
        // only kill pods whose restart comes within the settle time.
        let units: Vec<UnitInfo> = self
            .units()
            .into_iter()
            .filter(|u| support::local::pod_record(&self.m.dir, APP, u.number)["restarts"].as_u64().unwrap_or(0) <= 1)
            .collect();
        if units.is_empty() {
            let leader = self.leader();
            self.m.ok(&["run-hook", &leader.name, "update-status"]);
            return "every pod is in crash-loop back-off: update-status instead".into();
        }
        let u = self.rng.pick(&units);
        let Some(pid) = redis_server_pid(&self.m.dir, u.number) else {
            self.m.fail(&format!("no redis-server runs in {}'s pod", u.name))
        };
        Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
        let leader = self.leader();
        self.m.ok(&["run-hook", &leader.name, "update-status"]);
        format!("redis-server of {} (pid {pid}) killed; update-status on {}", u.name, leader.name)
    }

    // -----------------------------------------------------------------------------------------------
    // Invariants.

    fn check_all(&mut self) {
        let trust_pods = self.strict || self.ordinals_ok();
        let units = self.settle_status(!trust_pods);
        let leader = units.iter().find(|u| u.leader).unwrap();
        let pw = match (self.o.bad().is_empty() || self.strict, &self.o.password) {
            (false, Some(known)) => {
                // BUG (charm): get-password refuses while any option is bad, though Redis still requires
                // the password (see get_password_works_while_an_unrelated_option_is_bad).
                let r = self.m.action(&leader.name, "get-password");
                match r["results"]["password"].as_str() {
                    Some(p) => p.to_string(),
                    None => {
                        let msg = r["message"].as_str().unwrap_or_default();
                        self.m.check(msg.starts_with("invalid config: "), || format!("get-password gave {r:?}"));
                        self.password_refusals += 1;
                        known.clone()
                    }
                }
            }
            _ => self.m.password(&leader.name),
        };
        match &self.o.password {
            None => self.m.check(pw.len() == 32, || format!("a generated password of {} characters", pw.len())),
            Some(old) => self.m.check(*old == pw, || "the Redis password changed (no rotation was asked)".into()),
        }
        self.o.password = Some(pw.clone());
        self.check_spec();
        for u in &units {
            self.check_redis(u, &pw);
        }
        // A unit publishes from the last good config: every unit while the config is good, and (the fixed bugs)
        // also while it is bad, from the one the leader last rendered and shared in the peer bag, a unit added
        // while the config was bad included.
        let all_good = self.o.bad().is_empty();
        for c in &mut self.o.clients {
            c.published = units.iter().filter(|_| all_good || self.strict).map(|u| u.name.clone()).collect();
        }
        for c in self.o.clients.clone() {
            self.check_relation(&c, &units, &pw, trust_pods);
        }
        if trust_pods {
            self.check_writable(&units, &pw);
        } else {
            self.skipped_write_checks += 1;
        }
    }

    /// (3) Polls status until every unit shows what the oracle says; fails at once on an agent error.
    /// `pods_off`: the units are not numbered 0..N-1 (the juju-local BUG), so every Sentinel waits for
    /// the missing pod 0 for about 20 s: `waiting "container … not ready"` is the truth then.
    fn settle_status(&self, pods_off: bool) -> Vec<UnitInfo> {
        let deadline = Instant::now() + SETTLE;
        loop {
            let st = self.m.status();
            let problem = self.status_problem(&st, pods_off);
            let Some(problem) = problem else { return self.units() };
            if problem.starts_with("agent error") || Instant::now() > deadline {
                self.m.fail(&format!("status does not tell the truth after {SETTLE:?}: {problem}"));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn status_problem(&self, st: &Value, pods_off: bool) -> Option<String> {
        let app = &st["applications"][APP];
        let units = app["units"].as_object()?;
        for (name, u) in units {
            if u["juju-status"]["current"] == "error" {
                return Some(format!("agent error on {name}: {}", u["juju-status"]));
            }
        }
        if units.len() != self.o.units {
            return Some(format!("{} units, expected {}", units.len(), self.o.units));
        }
        if app["application-status"]["current"] == "error" {
            return Some(format!("application error: {}", app["application-status"]));
        }
        if units.values().filter(|u| u["leader"] == true).count() != 1 {
            return Some("not exactly one leader".into());
        }
        let bad = self.o.bad();
        let related = !self.o.clients.is_empty();
        for (name, u) in units {
            if u["juju-status"]["current"] != "idle" {
                return Some(format!("{name} agent {}", u["juju-status"]));
            }
            let (cur, msg) = (
                u["workload-status"]["current"].as_str().unwrap_or_default(),
                u["workload-status"]["message"].as_str().unwrap_or_default(),
            );
            if bad.is_empty() {
                let mut want = format!("listening on port {}", self.o.good.port);
                if u["leader"] != true {
                    want.push_str(" (pod spec set by the leader)");
                }
                if related {
                    want.push_str("; auth on: ops-library clients cannot connect");
                }
                let not_ready = cur == "waiting" && msg.starts_with("container \"") && msg.contains("\" not ready");
                if (cur != "active" || msg != want) && !(pods_off && not_ready) {
                    return Some(format!("{name} is {cur} {msg:?}, expected active {want:?}"));
                }
            } else {
                let named: Vec<&str> = msg
                    .strip_prefix("invalid config: ")
                    .map(|m| m.split("; ").map(|s| s.split(' ').next().unwrap_or_default()).collect())
                    .unwrap_or_default();
                let values_shown =
                    bad.iter().all(|o| msg.contains(&format!("{o} ")) && msg.contains(self.o.effective(o).as_str()));
                if cur != "blocked" || named != bad || !values_shown {
                    return Some(format!("{name} is {cur} {msg:?}, expected blocked naming {bad:?}"));
                }
            }
        }
        if app["version"].as_str() != Some(self.o.spec_image.version().as_str()) {
            return Some(format!("version {}, expected {}", app["version"], self.o.spec_image.version()));
        }
        None
    }

    /// (1) The committed spec renders the last good config and the image current then.
    fn check_spec(&self) {
        let model = self.m.model_json();
        let app = &model["apps"][APP];
        self.m.check(app["operator_error"].is_null(), || format!("operator error {}", app["operator_error"]));
        let Some(text) = app["applied_spec"].as_str() else { self.m.fail("no applied spec") };
        let spec: Value = serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(text).unwrap()).unwrap();
        let Some(redis) = spec["containers"].as_array().and_then(|c| c.iter().find(|c| c["name"] == "redis")) else {
            self.m.fail(&format!("no redis container in the spec:\n{text}"))
        };
        let g = &self.o.good;
        self.m.check(redis["ports"][0]["containerPort"] == g.port, || format!("containerPort in {}", redis["ports"]));
        let img = &redis["imageDetails"];
        let want = &self.o.spec_image;
        let field = |k: &str| img[k].as_str().unwrap_or_default().to_string();
        self.m.check(
            field("imagePath") == want.path && field("username") == want.username && field("password") == want.password,
            || format!("imageDetails {} (path/username), expected {} / {}", img["imagePath"], want.path, want.username),
        );
        let conf = redis["volumeConfig"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|v| v["files"].as_array().into_iter().flatten())
            .find(|f| f["path"] == "redis.conf")
            .and_then(|f| f["content"].as_str())
            .unwrap_or_default();
        let lines: BTreeSet<&str> = conf.lines().collect();
        for line in [
            format!("port {}", g.port),
            format!("appendonly {}", if g.appendonly { "yes" } else { "no" }),
            format!("appendfsync {}", g.appendfsync),
            format!("save {}", g.save),
            format!("maxmemory {}", g.maxmemory),
            format!("maxmemory-policy {}", g.policy),
        ] {
            self.m.check(lines.contains(line.as_str()), || format!("redis.conf lacks {line:?}:\n{conf}"));
        }
    }

    /// (2) PING with the password on the good port, NOAUTH without it, CONFIG GET as rendered.
    fn check_redis(&self, u: &UnitInfo, pw: &str) {
        let g = &self.o.good;
        let addr = format!("{}:{}", u.address, g.port);
        let want = [
            ("port", g.port.to_string()),
            ("appendonly", if g.appendonly { "yes" } else { "no" }.to_string()),
            ("appendfsync", g.appendfsync.clone()),
            ("save", g.save.clone()),
            ("maxmemory", g.maxmemory.to_string()),
            ("maxmemory-policy", g.policy.clone()),
        ];
        let deadline = Instant::now() + SETTLE;
        loop {
            let problem = (|| -> Result<(), String> {
                resp::ping(&addr, Some(pw), Duration::from_secs(1)).map_err(|e| format!("PING: {e:#}"))?;
                match resp::query(&addr, None, &["GET", "soak"], Duration::from_secs(1)) {
                    Ok(resp::Resp::Error(e)) if e.starts_with("NOAUTH") => {}
                    other => return Err(format!("without the password GET gave {other:?}")),
                }
                for (key, value) in &want {
                    let r = resp::query(&addr, Some(pw), &["CONFIG", "GET", key], Duration::from_secs(1))
                        .map_err(|e| format!("CONFIG GET {key}: {e:#}"))?;
                    let got = match &r {
                        resp::Resp::Array(items) if items.len() == 2 => items[1].as_str().unwrap_or_default(),
                        _ => "",
                    };
                    if got != value {
                        return Err(format!("CONFIG GET {key} = {r:?}, expected {value:?}"));
                    }
                }
                Ok(())
            })();
            match problem {
                Ok(()) => return,
                Err(p) if Instant::now() > deadline => {
                    self.m.fail(&format!("Redis of {} at {addr}: {p}\n{}", u.name, self.pod_diagnostics(u.number)))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(300)),
            }
        }
    }

    /// What juju-local recorded about a unit's pod, and what its network namespace holds now.
    fn pod_diagnostics(&self, n: u32) -> String {
        let model = self.m.model_json();
        let pod = &support::local::pod_record(&self.m.dir, APP, n);
        let ns = pod["netns"].as_str().unwrap_or_default();
        let run = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        let procs: Vec<String> = run(&["netns", "pids", ns])
            .split_whitespace()
            .map(|pid| {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                format!("{pid} {}", String::from_utf8_lossy(&cmd).replace('\0', " ").trim())
            })
            .collect();
        let addr = model["apps"][APP]["units"][n.to_string()]["address"].as_str().unwrap_or_default().to_string();
        let veth = format!("jl{}v{}", model["network"]["index"], addr.rsplit('.').next().unwrap_or_default());
        format!(
            "host side: {}{}{}pod eth0: {}\n\
             pod record: netns {ns}, restarts {}, error {}, containers {}\nnetns addresses:\n{}processes: {procs:?}\nhost links: {}",
            run(&["-d", "-o", "link", "show", &veth]),
            run(&["neigh", "show", &addr]),
            run(&["route", "get", &addr]),
            run(&["-n", ns, "-o", "link", "show", "eth0"]),
            pod["restarts"],
            pod["error"],
            pod["containers"]
                .as_array()
                .map(|c| c.iter().map(|c| format!("{}={}", c["name"], c["pid"])).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            run(&["-n", ns, "-br", "addr"]),
            run(&["-br", "link"]).lines().filter(|l| l.starts_with("jl")).collect::<Vec<_>>().join("; ")
        )
    }

    /// The pod address a published host name stands for: a unit's IP, or `<app>-<n>.<app>-endpoints`.
    fn resolve(host: &str, units: &[UnitInfo]) -> Option<String> {
        if let Some(u) = units.iter().find(|u| u.address == host) {
            return Some(u.address.clone());
        }
        // The charm publishes pod names fully qualified (juju-local's namespace is the model, `local`).
        let short = host.strip_suffix(".local.svc.cluster.local").unwrap_or(host);
        let n: u32 =
            short.strip_suffix(&format!(".{APP}-endpoints"))?.strip_prefix(&format!("{APP}-"))?.parse().ok()?;
        units.iter().find(|u| u.pod == n).map(|u| u.address.clone())
    }

    /// (4) Both client families see a host, the current port, and (reactive) the password.
    fn check_relation(&mut self, c: &Client, units: &[UnitInfo], pw: &str, trust_pods: bool) {
        let rid = &c.rid;
        let text = self.m.ok(&["show-relation", rid]);
        let view: Value = serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&text).unwrap()).unwrap();
        let port = self.o.good.port;
        let bags = view["unit-data"].as_object().cloned().unwrap_or_default();
        let mut silent = 0;
        for u in units {
            let bag = &bags.get(&u.name).cloned().unwrap_or_default();
            if !c.published.contains(&u.name) {
                // BUG (charm): a unit that entered the relation while the config is blocked publishes
                // nothing, though Redis serves on the last good port (see
                // a_client_relating_while_blocked_gets_the_last_good_address). Anything else is news.
                self.m.check(bag.get("port").is_none(), || format!("{rid}: {}'s bag {bag}", u.name));
                silent += 1;
                continue;
            }
            self.m.check(bag["port"].as_str() == Some(port.to_string().as_str()), || {
                format!("{rid}: {}'s bag {bag}, port {port}", u.name)
            });
            self.m
                .check(bag["host"].as_str().is_some_and(|h| !h.is_empty()), || format!("{rid}: {} bag {bag}", u.name));
            self.m.check(bag["password"] == serde_json::to_string(pw).unwrap(), || {
                format!("{rid}: {}'s password", u.name)
            });
        }
        self.unpublished += silent;
        let uses = &view["views"]["reactive-interface-redis"]["uses"];
        if silent == units.len() {
            self.m.check(uses.is_null(), || format!("{rid}: reactive view {uses} with nothing published"));
            return;
        }
        let host = uses["host"].as_str().unwrap_or_default().to_string();
        self.m.check(!host.is_empty() && uses["port"] == port && uses["password"] == pw, || {
            format!("{rid}: reactive view {} (port {port})", view["views"]["reactive-interface-redis"])
        });
        let urls = view["views"]["ops-redis-k8s-library"]["urls"].as_array().cloned().unwrap_or_default();
        let url_ok = |u: &Value| {
            u.as_str()
                .and_then(|u| u.strip_prefix("redis://"))
                .and_then(|u| u.rsplit_once(':'))
                .is_some_and(|(h, p)| !h.is_empty() && h != "None" && p == port.to_string())
        };
        // A silent unit's bag gives the ops library `redis://<host>:None`.
        let good_urls = urls.iter().filter(|u| url_ok(u)).count();
        self.m.check(good_urls >= 1 && (silent > 0 || good_urls == urls.len()), || {
            format!("{rid}: ops view {urls:?} (port {port})")
        });
        if trust_pods {
            self.m.check(Self::resolve(&host, units).is_some(), || format!("{rid} names {host}, which is no pod"));
        }
    }

    /// (5) The host clients are given (or, unrelated, some pod) takes a write with the password. While a
    /// failover settles, the leader's update-status (Juju's periodic hook) refreshes what clients see.
    fn check_writable(&mut self, units: &[UnitInfo], pw: &str) {
        let port = self.o.good.port;
        let key = format!("soak:{}", self.step);
        let deadline = Instant::now() + SETTLE;
        let leader = units.iter().find(|u| u.leader).unwrap().name.clone();
        loop {
            let published = |c: &&Client| units.iter().any(|u| c.published.contains(&u.name));
            let targets: Vec<String> = match self.o.clients.iter().find(published) {
                Some(c) => {
                    let text = self.m.ok(&["show-relation", &c.rid]);
                    let view: Value =
                        serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&text).unwrap()).unwrap();
                    let host = view["views"]["reactive-interface-redis"]["uses"]["host"].as_str().unwrap_or_default();
                    Self::resolve(host, units).into_iter().collect()
                }
                None => units.iter().map(|u| u.address.clone()).collect(),
            };
            // A small maxmemory (e.g. 2000000 with noeviction) makes the primary refuse with OOM: the
            // configured limit at work, on a primary (a replica says READONLY).
            let limited = self.o.good.maxmemory > 0;
            let written = targets.iter().any(|a| {
                let addr = format!("{a}:{port}");
                match resp::query(&addr, Some(pw), &["SET", &key, "v"], Duration::from_secs(1)) {
                    Ok(resp::Resp::Error(e)) => limited && e.starts_with("OOM"),
                    Ok(_) => resp::query(&addr, Some(pw), &["GET", &key], Duration::from_secs(1))
                        .is_ok_and(|r| r.as_str() == Some("v")),
                    Err(_) => false,
                }
            });
            if written {
                return;
            }
            if Instant::now() > deadline {
                let roles: Vec<String> = units
                    .iter()
                    .map(|u| {
                        let info = resp::info(
                            &format!("{}:{port}", u.address),
                            Some(pw),
                            "replication",
                            Duration::from_secs(1),
                        )
                        .unwrap_or_default();
                        format!(
                            "{} role={:?} master={:?}",
                            u.name,
                            resp::info_field(&info, "role"),
                            resp::info_field(&info, "master_host")
                        )
                    })
                    .collect();
                self.m.fail(&format!("no writable primary where clients are sent ({targets:?}); pods: {roles:?}"));
            }
            self.m.ok(&["run-hook", &leader, "update-status"]);
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The pid of the redis-server (not the Sentinel) in unit n's pod, found through its network namespace.
fn redis_server_pid(model_dir: &Path, n: u32) -> Option<u32> {
    let netns = support::local::pod_record(model_dir, APP, n)["netns"].as_str()?.to_string();
    let out = Command::new("ip").args(["netns", "pids", &netns]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.trim().parse::<u32>().ok()).find(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
            let c = String::from_utf8_lossy(&c);
            c.starts_with("redis-server") && !c.contains("sentinel")
        })
    })
}

fn soak(tag: &str, steps: usize, max_units: usize, budget: Duration) {
    let seed = seed();
    // The three bugs the soak first tolerated are fixed; `REDIS_K8S_SOAK_LENIENT=1` brings the tolerance back
    // (for bisecting an old build).
    let strict = !env_flag("REDIS_K8S_SOAK_LENIENT");
    eprintln!(
        "soak: seed {seed:#x} ({steps} steps, up to {max_units} units; replay with REDIS_K8S_SOAK_SEED={seed:#x})"
    );
    let mut rng = Rng(seed);
    let start_units = 1 + rng.below(max_units);
    let m = Model::new(tag, seed);
    let charm = charm();
    m.ok(&[
        "deploy",
        charm.to_str().unwrap(),
        "--resource",
        &format!("redis-image={}", IMAGES[0]),
        "-n",
        &start_units.to_string(),
    ]);
    let mut s = Soak {
        m,
        o: Oracle::new(start_units),
        rng,
        max_units,
        strict,
        skipped_write_checks: 0,
        step: 0,
        password_refusals: 0,
        unpublished: 0,
    };
    s.check_all();

    // Every kind once, in a random order, then weighted draws.
    let mut first: Vec<Kind> = KINDS.iter().map(|(k, _)| *k).collect();
    for i in (1..first.len()).rev() {
        let j = s.rng.below(i + 1);
        first.swap(i, j);
    }
    let started = Instant::now();
    let mut counts: BTreeMap<Kind, usize> = BTreeMap::new();
    for step in 1..=steps {
        if started.elapsed() > budget {
            eprintln!("soak: time budget of {budget:?} used up after {} steps", step - 1);
            break;
        }
        s.step = step;
        let k = if !s.strict && !s.ordinals_ok() {
            Kind::Redeploy
        } else {
            match first.pop() {
                Some(k) if s.possible(k) => k,
                _ => s.draw(),
            }
        };
        let t = Instant::now();
        let what = s.apply(k);
        let applied = t.elapsed();
        s.o.settle();
        s.check_all();
        *counts.entry(k).or_default() += 1;
        eprintln!(
            "soak: step {step}/{steps} {k:?}: {what} ({:.1} s + {:.1} s checks)",
            applied.as_secs_f64(),
            (t.elapsed() - applied).as_secs_f64()
        );
    }
    let done: usize = counts.values().sum();
    eprintln!(
        "soak: seed {seed:#x}: {done} steps in {:.0} s, {} kinds: {counts:?}; writable-primary check skipped after {} \
         steps (pods not numbered 0..N-1); get-password refused {} times while blocked, {} unit bags \
         left without an address while blocked (units added while the config was bad)",
        started.elapsed().as_secs_f64(),
        counts.len(),
        s.skipped_write_checks,
        s.password_refusals,
        s.unpublished
    );
}

/// The default run: 25 steps, at most 2 units (about a minute); `REDIS_K8S_LONG_TESTS=1`: 300 steps, up to
/// 3 units, at most about 10 minutes.
#[test]
fn soak_random_operations_keep_spec_redis_status_and_relation_true() {
    let long = env_flag("REDIS_K8S_LONG_TESTS");
    let steps =
        std::env::var("REDIS_K8S_SOAK_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(if long { 300 } else { 25 });
    if long {
        soak("long", steps, 3, Duration::from_secs(570));
    } else {
        soak("short", steps, 2, Duration::from_secs(600));
    }
}

/// Was a BUG (juju-local, found by the soak; fixed): a StatefulSet's pods are `<app>-0 … <app>-(N-1)`
/// whatever the unit numbers (reference §5.5: replicas = unit count), and the charm relies on that (pod 0
/// starts as the primary, Sentinels at ordinals 0..N-1). juju-local named each pod after its unit number,
/// so after the leader changed the pods were, e.g., `redis-k8s-1` and `redis-k8s-2`, and nothing took a
/// write. Now: scale to zero and back (a leader change; units 2 and 3 run pods 0 and 1), and a write goes
/// through, with the same password as before.
#[test]
fn leader_change_keeps_a_writable_primary() {
    let m = Model::new("ordinals", 0);
    let charm = charm();
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0", "-n", "2"]);
    m.ok(&["wait", APP, "--timeout", "30"]);
    let before = m.password(&format!("{APP}/0"));
    m.ok(&["scale", APP, "0"]);
    m.ok(&["scale", APP, "2"]);
    m.ok(&["wait", APP, "--timeout", "30"]);
    let pw = m.password(&format!("{APP}/2"));
    assert_eq!(pw, before, "the password survives scaling to zero and back");
    let addrs: Vec<String> =
        [2, 3].iter().map(|n| m.ok(&["address", &format!("{APP}/{n}")]).trim().to_string()).collect();
    let deadline = Instant::now() + SETTLE;
    loop {
        let written = addrs.iter().any(|a| {
            resp::query(&format!("{a}:6379"), Some(&pw), &["SET", "k", "v"], Duration::from_secs(1))
                .and_then(|r| r.into_result())
                .is_ok()
        });
        if written {
            return;
        }
        m.check(Instant::now() < deadline, || "no pod takes a write after the leader changed".into());
        m.ok(&["run-hook", &format!("{APP}/2"), "update-status"]);
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Was a BUG (charm, found by the soak; fixed): `get-password` validated the whole config and fails with the blocked
/// message when any option is bad, e.g. `appendfsync=sometimes`, although the last good spec stays in
/// place and Redis still requires the password: the operator cannot read it until the unrelated option
/// is fixed. Only `password` and `require-auth` matter to it. Reproduce:
///
/// ```sh
/// J="target/debug/juju-local --model-dir /tmp/m"
/// $J deploy redis-k8s.charm --resource redis-image=redis:7.0 && $J wait redis-k8s
/// $J config redis-k8s appendfsync=sometimes
/// $J run-action redis-k8s/0 get-password     # status: failed, message: invalid config: appendfsync …
/// ```
#[test]
fn get_password_works_while_an_unrelated_option_is_bad() {
    let m = Model::new("getpw", 0);
    let charm = charm();
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0"]);
    m.ok(&["wait", APP, "--timeout", "30"]);
    let before = m.password(&format!("{APP}/0"));
    m.ok(&["config", APP, "appendfsync=sometimes"]);
    let addr = format!("{}:6379", m.ok(&["address", &format!("{APP}/0")]).trim());
    resp::ping(&addr, Some(&before), Duration::from_secs(2)).expect("Redis still runs with the password");
    assert_eq!(m.password(&format!("{APP}/0")), before, "get-password gives the password Redis requires");
}

/// Was a BUG (charm, found by the soak; fixed): while any option was bad, `publish-db` published nothing, to keep the
/// last good data; but a client that relates then (or a unit added then) has no last good data, so it
/// gets no host and no port although Redis serves on the last good port. Reproduce:
///
/// ```sh
/// J="target/debug/juju-local --model-dir /tmp/m"
/// $J deploy redis-k8s.charm --resource redis-image=redis:7.0 && $J wait redis-k8s
/// $J config redis-k8s appendfsync=sometimes
/// $J relate redis-k8s:db client        # unit-data: addresses only, no host/port; reactive uses: null
/// ```
#[test]
fn a_client_relating_while_blocked_gets_the_last_good_address() {
    let m = Model::new("blockedrel", 0);
    let charm = charm();
    m.ok(&["deploy", charm.to_str().unwrap(), "--resource", "redis-image=redis:7.0"]);
    m.ok(&["wait", APP, "--timeout", "30"]);
    m.ok(&["config", APP, "appendfsync=sometimes"]);
    let out = m.ok(&["relate", &format!("{APP}:db"), "client"]);
    let view: Value = serde_json::to_value(serde_yaml::from_str::<serde_yaml::Value>(&out).unwrap()).unwrap();
    let uses = &view["views"]["reactive-interface-redis"]["uses"];
    assert_eq!(uses["port"], 6379, "the client is told where Redis still listens: {view}");
}
