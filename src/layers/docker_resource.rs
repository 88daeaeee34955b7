//! layer:docker-resource: turns `oci-image` resources into flags and image details (reference §6).
//!
//! Handlers, in the original's order: `auto_fetch` (once per unit: queue every `oci-image` resource
//! marked `auto-fetch: true` in metadata.yaml, as [`CharmMeta`] read it: the original re-read the file in
//! every hook, this reads the copy compiled into the binary, once per process), `fetch` (when `layer.docker-resource.pending`: run
//! `resource-get`, read its `content.yaml`), `check_updates` (in `upgrade-charm`, which a new
//! `juju attach-resource` fires: re-queue every fetched resource). Flags per resource
//! (`layer.docker-resource.<name>.`, named by [`flag`]): `fetched`, `available`, `failed`, `changed`.
//!
//! Deliberate differences from the original (listed in the README):
//! - a `content.yaml` that cannot be used (no `registrypath`, wrong types, not YAML, huge, an image path that
//!   is not an OCI image reference, see [`image_ref`]) gives `blocked "unable to fetch resource: <name>: <what
//!   is wrong>"` naming the problem. YAML errors give only the line and column: the parser's own text quotes
//!   the offending value, which may be the registry password (`password: !!int <secret>`);
//! - as in the original, a resource that `resource-get` cannot download (exit 1, `ERROR could not download
//!   resource: …`) or that does not come within the tool's time limit sets `.failed` and
//!   `blocked "unable to fetch resource: <name>: <the tool's error line>"`, and the hook succeeds. Other
//!   failures of the tool itself (missing, usage error, killed, unusable output) fail the hook: they are not
//!   about the resource, and Juju retries the hook;
//! - a failed resource is fetched again in `update-status` and `upgrade-charm` (which `juju attach-resource`
//!   fires), not in every hook as in the original: a download that hangs then delays only those hooks. Other
//!   hooks queue the same `blocked` status again without calling `resource-get`, so the status stays true;
//! - `.changed` lives for the hook in which the image changed (cleared at its end), so it cannot keep
//!   re-sending the pod spec in every later hook as it did in the original charm.

use std::io::Read;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::{Ctx, Options, State, image_ref, status};
use crate::juju::{LogLevel, ToolError};
use crate::meta::{CharmMeta, hook};
use crate::reactive::Registry;

const PENDING_KEY: &str = "layer.docker-resource.pending";
const AUTO_FETCHED: &str = "layer.docker-resource.auto-fetched";
/// The most of a `content.yaml` that is read; a real one is a few hundred bytes, a few KiB with a long
/// registry token.
const MAX_CONTENT: u64 = 64 * 1024;
/// The hooks in which a resource whose fetch failed is fetched again.
pub const RETRY_HOOKS: [&str; 2] = [hook::UPDATE_STATUS, hook::UPGRADE_CHARM];

/// Where and how to pull an image (`get_info` in the original).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    pub registry_path: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for ImageInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageInfo")
            .field("registry_path", &self.registry_path)
            .field("username", &self.username)
            .field("password", &if self.password.is_empty() { "" } else { "<redacted>" })
            .finish()
    }
}

/// The flags this layer keeps per resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceFlag {
    /// Asked for (queued at least once).
    Fetched,
    /// Fetched and usable: [`get_info`] has its details.
    Available,
    /// The last fetch failed; the unit is blocked until one succeeds.
    Failed,
    /// The image changed in this hook (cleared at its end).
    Changed,
}

/// The flag `layer.docker-resource.<name>.<which>`.
pub fn flag(name: &str, which: ResourceFlag) -> String {
    let which = match which {
        ResourceFlag::Fetched => "fetched",
        ResourceFlag::Available => "available",
        ResourceFlag::Failed => "failed",
        ResourceFlag::Changed => "changed",
    };
    format!("{}.{which}", prefix(name))
}

/// A resource's namespace, `layer.docker-resource.<name>`: its flags and kv keys are under it, and it is the
/// `data_changed` id of its image details.
fn prefix(name: &str) -> String {
    format!("layer.docker-resource.{name}")
}

/// The kv key of a resource's image details.
fn info_key(name: &str) -> String {
    format!("{}.image-info", prefix(name))
}

/// The kv key of why a resource's last fetch failed.
fn failure_key(name: &str) -> String {
    format!("{}.failure", prefix(name))
}

/// The image details of a fetched resource, if it is available.
pub fn get_info(ctx: &Ctx<'_>, name: &str) -> Option<ImageInfo> {
    ctx.kv.get_as(&info_key(name))
}

/// Reads a resource's `content.yaml` leniently: extra keys (Juju 2.9 adds some) are ignored; a
/// missing or empty `registrypath`, one that is not an image reference, or non-string credentials, are
/// errors that say so. No error quotes the parser or a credential.
pub fn parse_content(text: &str) -> std::result::Result<ImageInfo, String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| yaml_error(&e))?;
    let map = doc.as_mapping().ok_or("content.yaml is not a mapping")?;
    let field = |k: &str| -> std::result::Result<String, String> {
        match map.get(k) {
            None | Some(serde_yaml::Value::Null) => Ok(String::new()),
            Some(serde_yaml::Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(format!("{k} in content.yaml is not a string")),
        }
    };
    let registry_path = field("registrypath")?;
    if registry_path.trim().is_empty() {
        return Err("content.yaml has no registrypath".into());
    }
    if let Err(why) = image_ref::parse(&registry_path) {
        let shown = image_ref::shown(&registry_path);
        return Err(format!("registrypath \"{shown}\" in content.yaml is not an image reference: {why}"));
    }
    Ok(ImageInfo { registry_path, username: field("username")?, password: field("password")? })
}

/// What is wrong with YAML that does not parse: where, never serde_yaml's text, which quotes the offending
/// scalar (`invalid value: string "<password>", expected i64` for `password: !!int <password>`).
fn yaml_error(e: &serde_yaml::Error) -> String {
    match e.location() {
        Some(at) => format!("content.yaml is not valid YAML (line {}, column {})", at.line(), at.column()),
        None => "content.yaml is not valid YAML".into(),
    }
}

/// The `oci-image` resources with `auto-fetch: true` in the shipped metadata.yaml.
fn auto_fetch_resources() -> Result<impl Iterator<Item = &'static str>> {
    Ok(CharmMeta::shipped()?.auto_fetch_images())
}

/// Queues `name` for fetching (the original's `fetch(name)`).
pub fn fetch(ctx: &mut Ctx<'_>, name: &str) {
    let mut pending: Vec<String> = ctx.kv.get_as(PENDING_KEY).unwrap_or_default();
    if !pending.iter().any(|p| p == name) {
        pending.push(name.to_string());
    }
    ctx.kv.set_as(PENDING_KEY, &pending);
    ctx.flags.set(&flag(name, ResourceFlag::Fetched));
    ctx.flags.set(PENDING_KEY);
}

/// Registers the layer's handlers.
pub fn register(reg: &mut Registry<State>) {
    reg.handler("docker-resource:auto_fetch").when_not(AUTO_FETCHED).run(|ctx| {
        for name in auto_fetch_resources()? {
            fetch(ctx, name);
        }
        ctx.flags.set(AUTO_FETCHED);
        Ok(())
    });
    reg.handler("docker-resource:fetch").when(PENDING_KEY).run(fetch_pending);
    reg.handler("docker-resource:check_updates").hook(&[hook::UPGRADE_CHARM]).run(|ctx| {
        for name in auto_fetch_resources()? {
            if ctx.flags.is_set(&flag(name, ResourceFlag::Fetched)) {
                fetch(ctx, name);
            }
        }
        Ok(())
    });
}

fn fetch_pending(ctx: &mut Ctx<'_>) -> Result<()> {
    let set_status = Options::shipped().docker_resource_set_status;
    let pending: Vec<String> = ctx.kv.get_as(PENDING_KEY).unwrap_or_default();
    let retry = RETRY_HOOKS.contains(&ctx.hook);
    let mut failed: Vec<(String, String)> = Vec::new();
    for name in &pending {
        let [available, failed_flag, changed] =
            [ResourceFlag::Available, ResourceFlag::Failed, ResourceFlag::Changed].map(|f| flag(name, f));
        if ctx.flags.is_set(&failed_flag) && !retry {
            // Not fetched again in this hook: the unit is still blocked for the same reason.
            let why: String = ctx.kv.get_as(&failure_key(name)).unwrap_or_else(|| "the last fetch failed".into());
            ctx.trace.push(format!("resource {name} failed before: fetched again in update-status or upgrade-charm"));
            failed.push((name.clone(), why));
            continue;
        }
        if set_status {
            status::maintenance(ctx, &format!("fetching resource: {name}"))?;
        }
        match fetch_one(ctx, name)? {
            Ok(info) => {
                let was_available = ctx.flags.is_set(&available);
                let is_changed = ctx.kv.data_changed(&prefix(name), &info);
                ctx.kv.set_as(&info_key(name), &info);
                ctx.kv.unset(&failure_key(name));
                ctx.flags.set(&available);
                ctx.flags.clear(&failed_flag);
                ctx.flags.toggle(&changed, was_available && is_changed);
            }
            Err(why) => {
                ctx.tools
                    .log(LogLevel::Error, &format!("unable to fetch docker resource {name}: {why}"))
                    .context("logging a resource failure")?;
                ctx.kv.set_as(&failure_key(name), &why);
                ctx.flags.set(&failed_flag);
                ctx.flags.clear(&available);
                ctx.flags.clear(&changed);
                failed.push((name.clone(), why));
            }
        }
    }
    if failed.is_empty() {
        ctx.kv.set_as(PENDING_KEY, &Vec::<String>::new());
        ctx.flags.clear(PENDING_KEY);
    } else {
        if set_status {
            let what: Vec<String> = failed.iter().map(|(n, why)| format!("{n}: {why}")).collect();
            let noun = if failed.len() == 1 { "resource" } else { "resources" };
            status::blocked(ctx, &format!("unable to fetch {noun}: {}", what.join("; ")));
        }
        let names: Vec<String> = failed.into_iter().map(|(n, _)| n).collect();
        ctx.kv.set_as(PENDING_KEY, &names);
    }
    Ok(())
}

/// Fetches and reads one resource. `Ok(Err(why))`: it could not be downloaded in time or used (the unit
/// blocks and tries again later); `Err`: `resource-get` itself could not be run as its contract says (the
/// hook fails, and Juju retries it).
fn fetch_one(ctx: &mut Ctx<'_>, name: &str) -> Result<std::result::Result<ImageInfo, String>> {
    let path = match ctx.tools.resource_get(name) {
        Ok(path) => path,
        // Exit 1: `ERROR could not download resource: <cause>` (reference: juju-podspec-charms §3.1).
        Err(ToolError::Runtime { message, .. }) => return Ok(Err(message)),
        // A download that hangs is still a download that failed: block, and try again later.
        Err(e @ ToolError::Timeout { .. }) => return Ok(Err(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    Ok(read_content(&path).and_then(|t| parse_content(&t)))
}

fn read_content(path: &std::path::Path) -> std::result::Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {} ({e})", path.display()))?;
    let mut buf = Vec::new();
    file.take(MAX_CONTENT + 1).read_to_end(&mut buf).map_err(|e| format!("cannot read {} ({e})", path.display()))?;
    if buf.len() as u64 > MAX_CONTENT {
        return Err(format!("content.yaml is larger than {MAX_CONTENT} bytes"));
    }
    String::from_utf8(buf).map_err(|_| "content.yaml is not UTF-8".to_string())
}

/// End of a successful hook: `.changed` flags last one hook.
pub fn finalize(ctx: &mut Ctx<'_>) -> Result<()> {
    for name in auto_fetch_resources()? {
        ctx.flags.clear(&flag(name, ResourceFlag::Changed));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::juju::fake::{FakeJuju, FakeModel, Fault, timeout_fault};
    use crate::juju::{HookEnv, HookTools};
    use crate::reactive::{AutoSpec, Engine, Flags, Kv, Store, UnitState};
    use std::path::PathBuf;

    const SECRET: &str = "s3cret-registry-token-0123456789";

    /// A scratch directory for one test.
    fn scratch(label: &str) -> PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let d = std::env::temp_dir().join(format!("redis-k8s-dr-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A fake whose `redis-image` is `content` (written under `dir`).
    fn fake_with(dir: &std::path::Path, content: &[u8]) -> FakeJuju {
        let fake = FakeJuju::new(FakeModel::new("redis-k8s/0"));
        set_image(&fake, dir, content);
        fake
    }

    fn set_image(fake: &FakeJuju, dir: &std::path::Path, content: &[u8]) {
        let p = dir.join("content.yaml");
        std::fs::write(&p, content).unwrap();
        fake.model.borrow_mut().resources.insert("redis-image".into(), Ok(p));
    }

    /// Runs `f` in a context for `hook` over `state`, and returns the state it leaves and what it queued.
    fn in_hook(
        hook: &str,
        fake: &FakeJuju,
        state: UnitState,
        f: impl FnOnce(&mut Ctx<'_>) -> Result<()>,
    ) -> (Result<()>, UnitState, Option<(String, String)>) {
        let env = HookEnv::default();
        let mut tools = HookTools::new(Box::new(fake.clone()));
        let mut ctx =
            Ctx::new(hook, &env, &mut tools, Flags::new(state.flags, Vec::new()), Kv::new(state.kv), State::default());
        let r = f(&mut ctx);
        let queued = ctx.charm.status.winner().map(|(s, m)| (s.as_str().to_string(), m.to_string()));
        let state = UnitState { flags: ctx.flags.into_map(), kv: ctx.kv.into_map() };
        (r, state, queued)
    }

    fn queue_and_fetch(ctx: &mut Ctx<'_>) -> Result<()> {
        fetch(ctx, "redis-image");
        fetch_pending(ctx)
    }

    const AVAILABLE: &str = "layer.docker-resource.redis-image.available";
    const FAILED: &str = "layer.docker-resource.redis-image.failed";
    const CHANGED: &str = "layer.docker-resource.redis-image.changed";

    #[test]
    fn a_tagged_or_repeated_password_never_reaches_the_error() {
        for doc in [
            format!("registrypath: redis:7.0\npassword: !!int {SECRET}\n"),
            format!("registrypath: redis:7.0\npassword: !!float {SECRET}\n"),
            format!("registrypath: redis:7.0\npassword: !!bool {SECRET}\n"),
            format!("registrypath: redis:7.0\npassword: !!null {SECRET}\n"),
            format!("registrypath: redis:7.0\npassword: {SECRET}\npassword: {SECRET}\n"),
            format!("registrypath: redis:7.0\n{SECRET}: 1\n{SECRET}: 2\n"),
            format!("registrypath: redis:7.0\npassword: [{SECRET}\n"),
        ] {
            let e = parse_content(&doc).expect_err(&doc);
            assert!(!e.contains(SECRET) && !e.contains("s3cret"), "{doc:?} gave {e}");
            assert!(e.starts_with("content.yaml is not valid YAML (line ") || e.contains("is not a string"), "{e}");
        }
        let e = parse_content(&format!("registrypath: redis:7.0\npassword: !!int {SECRET}\n")).unwrap_err();
        assert_eq!(e, "content.yaml is not valid YAML (line 2, column 11)");
    }

    #[test]
    fn a_registry_token_of_a_few_kib_is_read_and_the_limit_is_64_kib() {
        let dir = scratch("size");
        let token = "t".repeat(4096);
        let p = dir.join("content.yaml");
        std::fs::write(&p, format!("registrypath: registry.example.com/redis:7.0\nusername: bot\npassword: {token}\n"))
            .unwrap();
        let info = read_content(&p).and_then(|t| parse_content(&t)).unwrap();
        assert_eq!(info.password, token);
        // At the limit still read, one byte over refused, without reading on.
        let mut at = format!("registrypath: redis:7.0\npassword: {token}\n# ").into_bytes();
        at.resize(64 * 1024 - 1, b'x');
        at.push(b'\n');
        std::fs::write(&p, &at).unwrap();
        assert_eq!(read_content(&p).and_then(|t| parse_content(&t)).unwrap().password, token);
        at.insert(0, b'\n');
        std::fs::write(&p, &at).unwrap();
        assert_eq!(read_content(&p).unwrap_err(), "content.yaml is larger than 65536 bytes");
    }

    #[test]
    fn queueing_a_resource_twice_fetches_it_once() {
        let dir = scratch("dedup");
        let fake = fake_with(&dir, b"registrypath: redis:7.0\n");
        let (r, state, _) = in_hook("upgrade-charm", &fake, UnitState::default(), |ctx| {
            fetch(ctx, "redis-image");
            fetch(ctx, "redis-image");
            assert_eq!(ctx.kv.get_as::<Vec<String>>(PENDING_KEY).unwrap(), ["redis-image"]);
            fetch_pending(ctx)
        });
        r.unwrap();
        assert_eq!(fake.model.borrow().count("resource-get"), 1);
        assert!(state.flags.contains_key(AVAILABLE));
        assert!(!state.flags.contains_key(PENDING_KEY));
    }

    #[test]
    fn a_resource_that_cannot_be_downloaded_blocks_and_heals_in_update_status() {
        let dir = scratch("download");
        let fake = FakeJuju::new(FakeModel::new("redis-k8s/0"));
        fake.model
            .borrow_mut()
            .resources
            .insert("redis-image".into(), Err("resource#redis-k8s/redis-image not found".into()));
        let (r, state, queued) = in_hook("install", &fake, UnitState::default(), queue_and_fetch);
        r.unwrap();
        let line = "ERROR could not download resource: resource#redis-k8s/redis-image not found";
        let expected = format!("unable to fetch resource: redis-image: {line}");
        assert_eq!(queued, Some(("blocked".into(), expected.clone())));
        assert!(state.flags.contains_key(FAILED) && !state.flags.contains_key(AVAILABLE));
        assert!(state.flags.contains_key(PENDING_KEY), "still queued");
        // Other hooks keep the unit blocked for the same reason without downloading again.
        for hook in ["config-changed", "leader-elected", "start", "db-relation-joined"] {
            let (r, again, queued) = in_hook(hook, &fake, state.clone(), fetch_pending);
            r.unwrap();
            assert_eq!(queued, Some(("blocked".into(), expected.clone())), "{hook}");
            assert_eq!(again, state, "{hook}");
        }
        assert_eq!(fake.model.borrow().count("resource-get"), 1);
        // update-status tries again: still failing, then the resource appears.
        let (r, state, queued) = in_hook("update-status", &fake, state, fetch_pending);
        r.unwrap();
        assert_eq!(queued, Some(("blocked".into(), expected)));
        assert_eq!(fake.model.borrow().count("resource-get"), 2);
        set_image(&fake, &dir, b"registrypath: redis:7.0\n");
        let (r, state, queued) = in_hook("update-status", &fake, state, fetch_pending);
        r.unwrap();
        assert_eq!(queued, None, "nothing blocks any more");
        assert!(state.flags.contains_key(AVAILABLE));
        assert!(!state.flags.contains_key(FAILED) && !state.flags.contains_key(PENDING_KEY));
        assert!(!state.kv.contains_key(&failure_key("redis-image")));
        let logs = fake.model.borrow().logs.clone();
        assert_eq!(logs.iter().filter(|(l, m)| l == "ERROR" && m.contains(line)).count(), 2, "{logs:?}");
    }

    #[test]
    fn a_download_that_times_out_blocks_and_heals_in_upgrade_charm() {
        let dir = scratch("timeout");
        let fake = fake_with(&dir, b"registrypath: redis:7.0\n");
        fake.model.borrow_mut().faults.push(Fault {
            tool: "resource-get".into(),
            nth: 0,
            error: timeout_fault("resource-get"),
        });
        let (r, state, queued) = in_hook("install", &fake, UnitState::default(), queue_and_fetch);
        r.unwrap();
        let (s, m) = queued.unwrap();
        assert_eq!(s, "blocked");
        assert_eq!(m, "unable to fetch resource: redis-image: resource-get did not finish within 300s and was killed");
        assert!(state.flags.contains_key(FAILED));
        let (r, state, queued) = in_hook("upgrade-charm", &fake, state, fetch_pending);
        r.unwrap();
        assert_eq!(queued, None);
        assert!(state.flags.contains_key(AVAILABLE) && !state.flags.contains_key(FAILED));
    }

    #[test]
    fn resource_get_itself_failing_fails_the_hook() {
        for error in [
            ToolError::Missing { tool: "resource-get".into() },
            ToolError::Usage { tool: "resource-get".into(), message: "ERROR unrecognized args".into() },
            ToolError::Failed {
                tool: "resource-get".into(),
                status: "killed by a signal".into(),
                message: String::new(),
            },
            ToolError::BadOutput { tool: "resource-get".into(), detail: "path is not UTF-8".into() },
            ToolError::Io { tool: "resource-get".into(), message: "broken pipe".into() },
        ] {
            let dir = scratch("toolfail");
            let fake = fake_with(&dir, b"registrypath: redis:7.0\n");
            fake.model.borrow_mut().faults.push(Fault { tool: "resource-get".into(), nth: 0, error: error.clone() });
            let (r, state, _) = in_hook("install", &fake, UnitState::default(), queue_and_fetch);
            let e = r.expect_err(&error.to_string());
            assert_eq!(e.to_string(), error.to_string());
            assert!(!state.flags.contains_key(FAILED), "{error}");
        }
    }

    /// The charm's own engine with only this layer, a probe that records every hook in which `.changed` is
    /// set, and this layer's end-of-hook work.
    fn probe_engine() -> Engine<State> {
        let mut reg = Registry::new();
        register(&mut reg);
        reg.handler("probe").when(CHANGED).run(|ctx| {
            ctx.trace.push("probe: image changed".into());
            Ok(())
        });
        Engine::new(reg, AutoSpec::default(), finalize)
    }

    #[test]
    fn changed_lasts_exactly_the_hook_in_which_the_image_changed() {
        let dir = scratch("changed");
        let fake = fake_with(&dir, b"registrypath: redis:7.0\n");
        let store = Store::at(dir.join("state"), crate::charm::STORE);
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let engine = probe_engine();
        let env = HookEnv { unit_name: "redis-k8s/0".into(), ..HookEnv::default() };
        let run = |hook: &str| {
            let mut tools = HookTools::new(Box::new(fake.clone()));
            let out = engine.run_hook(hook, &env, &mut tools, &store, State::default()).unwrap();
            fake.model.borrow_mut().end_hook(true);
            (out.trace.iter().any(|l| l == "probe: image changed"), out.flags)
        };
        let (seen, flags) = run("install");
        assert!(!seen, "the first fetch is no change");
        assert!(flags.iter().any(|f| f == AVAILABLE));
        set_image(&fake, &dir, b"registrypath: registry.example.com/redis:7.2\n");
        let (seen, flags) = run("upgrade-charm");
        assert!(seen, "handlers see .changed in the hook where the image changed");
        assert!(!flags.iter().any(|f| f == CHANGED), "committed: {flags:?}");
        for hook in ["config-changed", "update-status", "upgrade-charm"] {
            let (seen, flags) = run(hook);
            assert!(!seen && !flags.iter().any(|f| f == CHANGED), "{hook}: {flags:?}");
        }
    }

    #[test]
    fn content_is_read_leniently_and_rejected_clearly() {
        let ok =
            parse_content("registrypath: redis:7.0\nusername: ''\npassword: ''\nrepository: x\nauth: y\n").unwrap();
        assert_eq!(ok.registry_path, "redis:7.0");
        let ok = parse_content(&format!("registrypath: reg.io/redis@sha256:{}\n", "ab".repeat(32))).unwrap();
        assert_eq!((ok.username.as_str(), ok.password.as_str()), ("", ""));
        for (text, why) in [
            ("username: u\n", "no registrypath"),
            ("registrypath: ''\n", "no registrypath"),
            ("registrypath: [a]\n", "registrypath in content.yaml is not a string"),
            ("registrypath: r\npassword: 12\n", "password in content.yaml is not a string"),
            ("- a\n", "not a mapping"),
            ("a: [\n", "not valid YAML"),
            ("registrypath: 'a b'\n", "character"),
            ("registrypath: 'redis:$(id)'\n", "registrypath \"redis:$(id)\" in content.yaml is not an image"),
        ] {
            let e = parse_content(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn metadata_resources_with_auto_fetch() {
        assert_eq!(auto_fetch_resources().unwrap().collect::<Vec<_>>(), ["redis-image"]);
        let m = "name: x\nresources:\n  a: {type: oci-image}\n  b: {type: file, filename: x, auto-fetch: true}\n  c: {type: oci-image, auto-fetch: true}\n";
        assert_eq!(CharmMeta::parse(m, "", "").unwrap().auto_fetch_images().collect::<Vec<_>>(), ["c"]);
    }

    #[test]
    fn flag_names() {
        assert_eq!(flag("redis-image", ResourceFlag::Available), AVAILABLE);
        assert_eq!(flag("redis-image", ResourceFlag::Failed), FAILED);
        assert_eq!(flag("redis-image", ResourceFlag::Changed), CHANGED);
        assert_eq!(flag("x", ResourceFlag::Fetched), "layer.docker-resource.x.fetched");
        assert_eq!(info_key("x"), "layer.docker-resource.x.image-info");
        assert_eq!(failure_key("x"), "layer.docker-resource.x.failure");
    }

    #[test]
    fn debug_hides_the_password() {
        let i = ImageInfo { registry_path: "r".into(), username: "u".into(), password: "hunter2".into() };
        assert!(!format!("{i:?}").contains("hunter2"));
    }
}
