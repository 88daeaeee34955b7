//! What juju-local reads from an unpacked charm: metadata.yaml (endpoints, resources, storage,
//! deployment), config.yaml (option types and defaults, with the controller's type checking of
//! `juju config` values, reference §6) and actions.yaml (action names and parameter defaults).

use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// One relation endpoint of the charm.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub name: String,
    pub interface: String,
    pub role: &'static str,
    /// `limit:` (0 = none): how many relations the endpoint may have (`state.go` `enforceMaxRelationLimit`).
    pub limit: u32,
}

/// The parts of metadata.yaml juju-local acts on.
#[derive(Clone, Debug, Default)]
pub struct Metadata {
    pub name: String,
    pub endpoints: Vec<Endpoint>,
    pub extra_bindings: Vec<String>,
    /// oci-image resource names.
    pub oci_resources: Vec<String>,
    /// filesystem storage: name → location.
    pub storage: BTreeMap<String, String>,
    pub stateful: bool,
    pub service_omitted: bool,
    /// 1 (podspec) or 2 (sidecar), as Juju decides it (see [`detect_format`]).
    pub format: u8,
    /// Format v2 `containers:`: name → (oci-image resource, [(storage, location)]).
    pub containers: BTreeMap<String, ContainerMeta>,
}

/// One `containers.<name>` entry of a format v2 charm.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerMeta {
    pub resource: Option<String>,
    /// `mounts: [{storage, location}]`.
    pub mounts: Vec<(String, String)>,
}

/// juju/charm `ensureUnambiguousFormat` (meta.go; the same in charm v11/v12 for Juju 3.1-3.6 and in
/// Juju 4.0 `internal/charm/meta.go`): the top-level keys sorted, the first v1 or v2 key fixes the format,
/// and any key of the other format is refused with exactly this text.
pub fn ensure_unambiguous(doc: &Value) -> Result<()> {
    let Some(map) = doc.as_object() else { return Ok(()) };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let (mut format, mut matched, mut mismatched) = (0u8, Vec::new(), Vec::new());
    for k in keys {
        let detected = match k.as_str() {
            "containers" | "assumes" | "charm-user" => 2,
            "series" | "deployment" | "min-juju-version" => 1,
            _ => continue,
        };
        if format == 0 {
            format = detected;
        }
        if format == detected { matched.push(k.as_str()) } else { mismatched.push(k.as_str()) }
    }
    if !mismatched.is_empty() {
        bail!(
            "ambiguous metadata: keys \"{}\" cannot be used with \"{}\"",
            mismatched.join("\", \""),
            matched.join("\", \"")
        );
    }
    Ok(())
}

/// The charm's format, as the Juju version decides it. Juju 3.1-3.6 (juju/charm v11/v12 `MetaFormatReasons`,
/// `charm.go`): any `series` makes it v1; otherwise a `manifest.yaml` with `bases` makes it v2. Juju 4.0
/// (`internal/charm/charm.go` `metaFormatReasons`, commit ce5b95b8): v2 when the manifest has bases or the
/// metadata has `containers`, else v1 (4.0 has no `series` at all).
pub fn detect_format(doc: &Value, manifest: Option<&str>, juju4: bool) -> u8 {
    let bases = manifest
        .and_then(|m| serde_yaml::from_str::<Value>(m).ok())
        .and_then(|m| m.get("bases").and_then(Value::as_array).map(|b| !b.is_empty()))
        .unwrap_or(false);
    let containers = doc.get("containers").and_then(Value::as_object).is_some_and(|c| !c.is_empty());
    if juju4 {
        return if bases || containers { 2 } else { 1 };
    }
    let series = doc.get("series").and_then(Value::as_array).is_some_and(|s| !s.is_empty());
    if !series && bases { 2 } else { 1 }
}

impl Metadata {
    pub fn load(charm_dir: &Path) -> Result<Metadata> {
        let path = charm_dir.join("metadata.yaml");
        let text = std::fs::read_to_string(&path).context("charm missing from disk: no metadata.yaml")?;
        let manifest = std::fs::read_to_string(charm_dir.join("manifest.yaml")).ok();
        Self::parse_charm(&text, manifest.as_deref(), false)
    }

    /// metadata.yaml alone, detected as Juju 3.x does (the tests' shorthand).
    #[cfg(test)]
    pub fn parse(text: &str) -> Result<Metadata> {
        Self::parse_charm(text, None, false)
    }

    /// metadata.yaml with the archive's manifest.yaml, the format detected as `juju4` or 3.x does.
    pub fn parse_charm(text: &str, manifest: Option<&str>, juju4: bool) -> Result<Metadata> {
        let doc: Value = serde_yaml::from_str(text).context("invalid metadata.yaml")?;
        ensure_unambiguous(&doc)?;
        let format = detect_format(&doc, manifest, juju4);
        let name = doc.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        if name.is_empty() {
            bail!("invalid metadata.yaml: name is missing");
        }
        let series: Vec<&str> = doc
            .get("series")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if format == 1 && !series.contains(&"kubernetes") {
            bail!("charm {name:?} is not a podspec Kubernetes charm (series must include kubernetes)");
        }
        let mut containers = BTreeMap::new();
        if format == 2
            && let Some(map) = doc.get("containers").and_then(Value::as_object)
        {
            for (c, spec) in map {
                let resource = spec.get("resource").and_then(Value::as_str).map(str::to_string);
                let mut mounts = Vec::new();
                for m in spec.get("mounts").and_then(Value::as_array).cloned().unwrap_or_default() {
                    let st = m.get("storage").and_then(Value::as_str).unwrap_or_default().to_string();
                    let loc = m.get("location").and_then(Value::as_str).unwrap_or_default().to_string();
                    mounts.push((st, loc));
                }
                containers.insert(c.clone(), ContainerMeta { resource, mounts });
            }
        }
        let mut endpoints = Vec::new();
        for (key, role) in [("provides", "provider"), ("requires", "requirer"), ("peers", "peer")] {
            if let Some(map) = doc.get(key).and_then(Value::as_object) {
                for (ep, spec) in map {
                    let interface = spec.get("interface").and_then(Value::as_str).unwrap_or_default().to_string();
                    let limit = spec.get("limit").and_then(Value::as_u64).unwrap_or(0) as u32;
                    endpoints.push(Endpoint { name: ep.clone(), interface, role, limit });
                }
            }
        }
        let extra_bindings = doc
            .get("extra-bindings")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let mut oci_resources = Vec::new();
        if let Some(map) = doc.get("resources").and_then(Value::as_object) {
            for (res, spec) in map {
                match spec.get("type").and_then(Value::as_str).unwrap_or("file") {
                    "oci-image" => oci_resources.push(res.clone()),
                    "file" => {}
                    other => bail!("unsupported resource type {other:?}"),
                }
            }
        }
        let mut storage = BTreeMap::new();
        if let Some(map) = doc.get("storage").and_then(Value::as_object) {
            for (st, spec) in map {
                let kind = spec.get("type").and_then(Value::as_str).unwrap_or_default();
                if kind != "filesystem" {
                    bail!("storage {st:?}: only filesystem storage is supported on Kubernetes, got {kind:?}");
                }
                let location = spec.get("location").and_then(Value::as_str).unwrap_or_default();
                let location =
                    if location.is_empty() { format!("/var/lib/juju/storage/{st}/0") } else { location.into() };
                storage.insert(st.clone(), location);
            }
        }
        let deployment = doc.get("deployment");
        let dtype = deployment.and_then(|d| d.get("type")).and_then(Value::as_str).unwrap_or("stateless");
        let service = deployment.and_then(|d| d.get("service")).and_then(Value::as_str).unwrap_or("cluster");
        Ok(Metadata {
            name,
            endpoints,
            extra_bindings,
            oci_resources,
            // A sidecar application is always a StatefulSet (application.go `Ensure`, DeploymentStateful).
            stateful: format == 2 || dtype == "stateful" || !storage.is_empty(),
            storage,
            service_omitted: service == "omit",
            format,
            containers,
        })
    }

    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }
}

/// The type of a config option.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptionType {
    String,
    Int,
    Float,
    Boolean,
}

impl OptionType {
    fn name(self) -> &'static str {
        match self {
            OptionType::String => "string",
            OptionType::Int => "int",
            OptionType::Float => "float",
            OptionType::Boolean => "boolean",
        }
    }
}

#[derive(Clone, Debug)]
pub struct ConfigOption {
    pub kind: OptionType,
    pub default: Option<Value>,
    pub description: String,
}

/// config.yaml: option name → option.
#[derive(Clone, Debug, Default)]
pub struct ConfigSchema {
    pub options: BTreeMap<String, ConfigOption>,
}

impl ConfigSchema {
    /// Reads config.yaml; a charm without one has no options.
    pub fn load(charm_dir: &Path) -> Result<ConfigSchema> {
        match std::fs::read_to_string(charm_dir.join("config.yaml")) {
            Ok(text) => Self::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigSchema::default()),
            Err(e) => Err(e).context("cannot read config.yaml"),
        }
    }

    pub fn parse(text: &str) -> Result<ConfigSchema> {
        let doc: Value = serde_yaml::from_str(text).context("invalid config")?;
        let Some(opts) = doc.get("options").and_then(Value::as_object) else {
            bail!("invalid config: empty configuration");
        };
        let mut options = BTreeMap::new();
        for (name, spec) in opts {
            let kind = match spec.get("type").and_then(Value::as_str).unwrap_or("string") {
                "string" => OptionType::String,
                "int" => OptionType::Int,
                "float" => OptionType::Float,
                "boolean" => OptionType::Boolean,
                other => bail!("invalid config: option {name:?} has unknown type {other:?}"),
            };
            let default = match spec.get("default") {
                None | Some(Value::Null) => None,
                Some(v) => Some(coerce_default(name, kind, v)?),
            };
            let description = spec.get("description").and_then(Value::as_str).unwrap_or_default().to_string();
            options.insert(name.clone(), ConfigOption { kind, default, description });
        }
        Ok(ConfigSchema { options })
    }

    /// Parses a `juju config k=v` string as the controller does (`ParseSettingsStrings`).
    pub fn parse_value(&self, key: &str, raw: &str) -> std::result::Result<Value, String> {
        let opt = self.options.get(key).ok_or_else(|| format!("unknown option {key:?}"))?;
        let bad = || format!("option {key:?} expected {}, got {raw:?}", opt.kind.name());
        Ok(match opt.kind {
            OptionType::String => Value::String(raw.to_string()),
            OptionType::Int => Value::from(raw.parse::<i64>().map_err(|_| bad())?),
            OptionType::Float => {
                let f: f64 = raw.parse().map_err(|_| bad())?;
                serde_json::Number::from_f64(f).map(Value::Number).ok_or_else(bad)?
            }
            OptionType::Boolean => Value::Bool(match raw {
                "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
                "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
                _ => return Err(bad()),
            }),
        })
    }

    /// The settings config-get sees: defaults overlaid with the user's values.
    pub fn effective(&self, user: &BTreeMap<String, Value>) -> BTreeMap<String, Option<Value>> {
        self.options.iter().map(|(k, o)| (k.clone(), user.get(k).cloned().or_else(|| o.default.clone()))).collect()
    }
}

fn coerce_default(name: &str, kind: OptionType, v: &Value) -> Result<Value> {
    let bad = || anyhow::anyhow!("invalid config default: option {name:?} expected {}, got {v}", kind.name());
    Ok(match (kind, v) {
        (OptionType::String, Value::String(_)) => v.clone(),
        (OptionType::Int, Value::Number(n)) if n.is_i64() => v.clone(),
        (OptionType::Int, Value::String(s)) => Value::from(parse_int_base0(s).ok_or_else(bad)?),
        (OptionType::Float, Value::Number(_)) => v.clone(),
        (OptionType::Boolean, Value::Bool(_)) => v.clone(),
        _ => return Err(bad()),
    })
}

fn parse_int_base0(s: &str) -> Option<i64> {
    let (neg, t) = match s.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = t.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else if t.len() > 1 && t.starts_with('0') {
        i64::from_str_radix(&t[1..], 8).ok()?
    } else {
        t.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

/// actions.yaml: action name → parameter defaults.
#[derive(Clone, Debug, Default)]
pub struct Actions {
    pub actions: BTreeMap<String, BTreeMap<String, Value>>,
}

impl Actions {
    pub fn load(charm_dir: &Path) -> Result<Actions> {
        let text = match std::fs::read_to_string(charm_dir.join("actions.yaml")) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Actions::default()),
            Err(e) => return Err(e).context("cannot read actions.yaml"),
        };
        let doc: Value = serde_yaml::from_str(&text).context("invalid actions.yaml")?;
        let mut actions = BTreeMap::new();
        if let Some(map) = doc.as_object() {
            for (name, spec) in map {
                let mut defaults = BTreeMap::new();
                if let Some(params) = spec.get("params").and_then(Value::as_object) {
                    for (p, ps) in params {
                        if let Some(d) = ps.get("default") {
                            defaults.insert(p.clone(), d.clone());
                        }
                    }
                }
                actions.insert(name.clone(), defaults);
            }
        }
        Ok(Actions { actions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "options:\n  port: {type: int, default: 6379, description: p}\n  name: {default: x}\n  on: {type: boolean, default: false}\n";

    #[test]
    fn config_values_are_checked_like_the_controller() {
        let c = ConfigSchema::parse(CONFIG).unwrap();
        assert_eq!(c.parse_value("port", "7000").unwrap(), Value::from(7000));
        assert_eq!(c.parse_value("port", "abc").unwrap_err(), "option \"port\" expected int, got \"abc\"");
        assert_eq!(c.parse_value("nope", "1").unwrap_err(), "unknown option \"nope\"");
        assert_eq!(c.parse_value("on", "True").unwrap(), Value::Bool(true));
        assert_eq!(c.parse_value("name", "abc").unwrap(), Value::from("abc"));
    }

    #[test]
    fn config_defaults_and_types() {
        assert!(ConfigSchema::parse("{}").is_err());
        assert!(ConfigSchema::parse("options:\n  a: {type: list}\n").is_err());
        let c = ConfigSchema::parse("options:\n  a: {type: int, default: '0x10'}\n").unwrap();
        assert_eq!(c.options["a"].default, Some(Value::from(16)));
    }

    #[test]
    fn metadata_requires_kubernetes_series() {
        assert!(Metadata::parse("name: x\nseries: [focal]\n").is_err());
        let m = Metadata::parse(
            "name: x\nseries: [kubernetes]\nprovides: {db: {interface: redis}}\nresources: {img: {type: oci-image}}\n\
             storage: {data: {type: filesystem, location: /data}}\n",
        )
        .unwrap();
        assert_eq!(m.oci_resources, vec!["img"]);
        assert_eq!(m.endpoint("db").unwrap().interface, "redis");
        assert!(m.stateful);
    }
}
