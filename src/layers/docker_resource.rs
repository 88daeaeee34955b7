//! layer:docker-resource: turns `oci-image` resources into flags and image details (reference §6).
//!
//! Handlers, in the original's order: `auto_fetch` (once per unit: queue every `oci-image` resource
//! marked `auto-fetch: true` in metadata.yaml), `fetch` (when `layer.docker-resource.pending`: run
//! `resource-get`, read its `content.yaml`), `check_updates` (in `upgrade-charm`, which a new
//! `juju attach-resource` fires: re-queue every fetched resource). Flags per resource
//! (`layer.docker-resource.<name>.`): `fetched`, `available`, `failed`, `changed`.
//!
//! Deliberate differences from the original (listed in the README):
//! - a `content.yaml` that cannot be used (no `registrypath`, wrong types, not YAML, huge, an image path that
//!   is not an OCI image reference, see [`image_ref`]) gives `blocked "unable to fetch resource: <name>: <what
//!   is wrong>"` naming the problem. YAML errors give only the line and column: the parser's own text quotes
//!   the offending value, which may be the registry password (`password: !!int <secret>`);
//! - `resource-get` itself failing is a tool failure and fails the hook (Juju retries it with backoff)
//!   instead of being mistaken for a bad resource;
//! - `.changed` lives for the hook in which the image changed (cleared at its end), so it cannot keep
//!   re-sending the pod spec in every later hook as it did in the original charm.

use std::collections::BTreeMap;
use std::io::Read;

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::{Ctx, METADATA_YAML, Options, State, image_ref, status};
use crate::juju::LogLevel;
use crate::reactive::Registry;

const PENDING_KEY: &str = "layer.docker-resource.pending";
const AUTO_FETCHED: &str = "layer.docker-resource.auto-fetched";
/// The most of a `content.yaml` that is read; a real one is a few hundred bytes.
const MAX_CONTENT: u64 = 64 * 1024;

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

/// The flag prefix of a resource.
pub fn prefix(name: &str) -> String {
    format!("layer.docker-resource.{name}")
}

/// The image details of a fetched resource, if it is available.
pub fn get_info(ctx: &Ctx<'_>, name: &str) -> Option<ImageInfo> {
    ctx.kv.get_as(&format!("{}.image-info", prefix(name)))
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

/// `oci-image` resources with `auto-fetch: true` in metadata.yaml.
pub fn auto_fetch_resources(metadata_yaml: &str) -> Vec<String> {
    #[derive(Deserialize)]
    struct Meta {
        #[serde(default)]
        resources: BTreeMap<String, Res>,
    }
    #[derive(Deserialize)]
    struct Res {
        #[serde(rename = "type", default)]
        kind: String,
        #[serde(rename = "auto-fetch", default)]
        auto_fetch: bool,
    }
    serde_yaml::from_str::<Meta>(metadata_yaml)
        .map(|m| {
            m.resources.into_iter().filter(|(_, r)| r.kind == "oci-image" && r.auto_fetch).map(|(n, _)| n).collect()
        })
        .unwrap_or_default()
}

/// Queues `name` for fetching (the original's `fetch(name)`).
pub fn fetch(ctx: &mut Ctx<'_>, name: &str) {
    let mut pending: Vec<String> = ctx.kv.get_as(PENDING_KEY).unwrap_or_default();
    if !pending.iter().any(|p| p == name) {
        pending.push(name.to_string());
    }
    ctx.kv.set_as(PENDING_KEY, &pending);
    ctx.flags.set(&format!("{}.fetched", prefix(name)));
    ctx.flags.set(PENDING_KEY);
}

/// Registers the layer's handlers.
pub fn register(reg: &mut Registry<State>) {
    reg.handler("docker-resource:auto_fetch").when_not(AUTO_FETCHED).run(|ctx| {
        for name in auto_fetch_resources(METADATA_YAML) {
            fetch(ctx, &name);
        }
        ctx.flags.set(AUTO_FETCHED);
        Ok(())
    });
    reg.handler("docker-resource:fetch").when(PENDING_KEY).run(fetch_pending);
    reg.handler("docker-resource:check_updates").hook(&["upgrade-charm"]).run(|ctx| {
        for name in auto_fetch_resources(METADATA_YAML) {
            if ctx.flags.is_set(&format!("{}.fetched", prefix(&name))) {
                fetch(ctx, &name);
            }
        }
        Ok(())
    });
}

fn fetch_pending(ctx: &mut Ctx<'_>) -> Result<()> {
    let set_status = Options::shipped().docker_resource_set_status;
    let pending: Vec<String> = ctx.kv.get_as(PENDING_KEY).unwrap_or_default();
    let mut failed: Vec<(String, String)> = Vec::new();
    for name in &pending {
        let p = prefix(name);
        if set_status {
            status::maintenance(ctx, &format!("fetching resource: {name}"))?;
        }
        let path = ctx.tools.resource_get(name)?;
        match read_content(&path).and_then(|t| parse_content(&t)) {
            Ok(info) => {
                let was_available = ctx.flags.is_set(&format!("{p}.available"));
                let is_changed = ctx.kv.data_changed(&p, &info);
                ctx.kv.set_as(&format!("{p}.image-info"), &info);
                ctx.flags.set(&format!("{p}.available"));
                ctx.flags.clear(&format!("{p}.failed"));
                ctx.flags.toggle(&format!("{p}.changed"), was_available && is_changed);
            }
            Err(why) => {
                ctx.tools
                    .log(LogLevel::Error, &format!("unable to fetch docker resource {name}: {why}"))
                    .context("logging a resource failure")?;
                ctx.flags.set(&format!("{p}.failed"));
                ctx.flags.clear(&format!("{p}.available"));
                ctx.flags.clear(&format!("{p}.changed"));
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
pub fn finalize(ctx: &mut Ctx<'_>) {
    for name in auto_fetch_resources(METADATA_YAML) {
        ctx.flags.clear(&format!("{}.changed", prefix(&name)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cret-registry-token-0123456789";

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
        assert_eq!(auto_fetch_resources(METADATA_YAML), ["redis-image"]);
        let m = "resources:\n  a: {type: oci-image}\n  b: {type: file, filename: x, auto-fetch: true}\n  c: {type: oci-image, auto-fetch: true}\n";
        assert_eq!(auto_fetch_resources(m), ["c"]);
    }

    #[test]
    fn debug_hides_the_password() {
        let i = ImageInfo { registry_path: "r".into(), username: "u".into(), password: "hunter2".into() };
        assert!(!format!("{i:?}").contains("hunter2"));
    }
}
