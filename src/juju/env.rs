//! What Juju tells a hook through its environment (reference §1.1).
//!
//! Juju builds a hook's environment from scratch; this reads the variables the charm needs once, at hook
//! start, into a plain struct that the rest of the charm is handed. Tests build one directly.
//!
//! Only the variables the charm uses are decoded, each with [`std::env::var_os`]: an unrelated variable
//! holding bytes that are not UTF-8 is never looked at, while such a value in one the charm needs is refused
//! with an [`EnvError`] naming it. Whatever is echoed back from the environment or the command line goes
//! through [`shown`]: escaped and cut short, so an error stays one short line.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The most characters of an input value [`shown`] echoes, after escaping.
pub const SHOWN_MAX: usize = 64;

/// A value from outside as it may appear in a message: quoted, with control characters, quotes and
/// backslashes escaped (`escape_debug`), bytes that are not UTF-8 as `\xNN`, and cut to [`SHOWN_MAX`]
/// characters with a trailing `…` when longer.
pub fn shown(value: &OsStr) -> String {
    let mut escaped = String::new();
    let mut cut = false;
    'chunks: for chunk in value.as_bytes().utf8_chunks() {
        let pieces = chunk
            .valid()
            .chars()
            .map(|c| c.escape_debug().to_string())
            .chain(chunk.invalid().iter().map(|b| format!("\\x{b:02x}")));
        for piece in pieces {
            if escaped.chars().count() + piece.chars().count() > SHOWN_MAX {
                cut = true;
                break 'chunks;
            }
            escaped.push_str(&piece);
        }
    }
    format!("\"{escaped}\"{}", if cut { "…" } else { "" })
}

/// A variable the charm needs holds something it cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvError {
    /// The variable's name.
    pub name: &'static str,
    /// What is wrong, worded to follow the name, with the value [`shown`].
    pub problem: String,
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.problem)
    }
}

impl std::error::Error for EnvError {}

/// Decodes one variable's value: `None` when unset or empty (Juju sets some to ""), an error naming it when
/// it is not UTF-8.
pub fn decode(name: &'static str, value: Option<OsString>) -> Result<Option<String>, EnvError> {
    match value {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => v
            .into_string()
            .map(Some)
            .map_err(|v| EnvError { name, problem: format!("is not valid UTF-8: {}", shown(&v)) }),
    }
}

/// Reads one variable of the process environment with [`decode`].
pub fn var(name: &'static str) -> Result<Option<String>, EnvError> {
    decode(name, std::env::var_os(name))
}

/// The hook context, as read from `JUJU_*` variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookEnv {
    /// `JUJU_UNIT_NAME`, e.g. `redis-k8s/0`.
    pub unit_name: String,
    /// `JUJU_CHARM_DIR` (or legacy `CHARM_DIR`).
    pub charm_dir: PathBuf,
    /// `JUJU_RELATION` (endpoint name) in relation hooks.
    pub relation: Option<String>,
    /// `JUJU_RELATION_ID`, e.g. `db:3`.
    pub relation_id: Option<String>,
    /// `JUJU_REMOTE_UNIT` (may be empty in -broken and -created).
    pub remote_unit: Option<String>,
    /// `JUJU_REMOTE_APP`.
    pub remote_app: Option<String>,
    /// `JUJU_DEPARTING_UNIT` in -departed.
    pub departing_unit: Option<String>,
    /// `JUJU_ACTION_NAME` in actions.
    pub action_name: Option<String>,
    /// `JUJU_VERSION`, e.g. `2.9.31`.
    pub juju_version: Option<String>,
    /// `JUJU_MODEL_NAME`: on Kubernetes, also the namespace the pods run in.
    pub model_name: Option<String>,
}

impl HookEnv {
    /// Reads the process environment: only the variables above, so unrelated ones may hold anything.
    pub fn from_env() -> Result<Self, EnvError> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// Reads a given variable map (empty values count as unset, as Juju sets some to "").
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Self {
        // Every value of a `String` map is UTF-8, the only thing `from_lookup` refuses.
        Self::from_lookup(|name| vars.get(name).map(OsString::from)).unwrap_or_default()
    }

    /// Reads the variables through `lookup` (a name in, its raw value out).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self, EnvError> {
        let get = |name: &'static str| decode(name, lookup(name));
        Ok(HookEnv {
            unit_name: get("JUJU_UNIT_NAME")?.unwrap_or_default(),
            charm_dir: match get("JUJU_CHARM_DIR")? {
                Some(dir) => PathBuf::from(dir),
                None => get("CHARM_DIR")?.map(PathBuf::from).unwrap_or_default(),
            },
            relation: get("JUJU_RELATION")?,
            relation_id: get("JUJU_RELATION_ID")?,
            remote_unit: get("JUJU_REMOTE_UNIT")?,
            remote_app: get("JUJU_REMOTE_APP")?,
            departing_unit: get("JUJU_DEPARTING_UNIT")?,
            action_name: get("JUJU_ACTION_NAME")?,
            juju_version: get("JUJU_VERSION")?,
            model_name: get("JUJU_MODEL_NAME")?,
        })
    }

    /// The application name: the unit name before the `/`.
    pub fn app_name(&self) -> &str {
        self.unit_name.split('/').next().unwrap_or_default()
    }

    /// The unit's number: the unit name after the `/`.
    pub fn unit_number(&self) -> Option<u32> {
        self.unit_name.split('/').nth(1).and_then(|n| n.parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_relation_context_and_treats_empty_as_unset() {
        let vars: BTreeMap<String, String> = [
            ("JUJU_UNIT_NAME", "redis-k8s/2"),
            ("JUJU_CHARM_DIR", "/var/lib/juju/agents/unit-redis-k8s-2/charm"),
            ("JUJU_RELATION", "db"),
            ("JUJU_RELATION_ID", "db:7"),
            ("JUJU_REMOTE_UNIT", ""),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let env = HookEnv::from_vars(&vars);
        assert_eq!(env.app_name(), "redis-k8s");
        assert_eq!(env.unit_number(), Some(2));
        assert_eq!(env.relation_id.as_deref(), Some("db:7"));
        assert_eq!(env.remote_unit, None);
    }

    #[test]
    fn only_the_variables_it_needs_are_decoded() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(b"r/\xff".to_vec());
        let lookup = |bad_name: &'static str| {
            let bad = bad.clone();
            move |name: &str| match name {
                n if n == bad_name => Some(bad.clone()),
                "JUJU_UNIT_NAME" => Some(OsString::from("redis-k8s/1")),
                _ => None,
            }
        };
        // Not a variable the charm reads: never looked at.
        assert_eq!(HookEnv::from_lookup(lookup("X")).unwrap().unit_name, "redis-k8s/1");
        let e = HookEnv::from_lookup(lookup("JUJU_UNIT_NAME")).unwrap_err();
        assert_eq!(e.to_string(), r#"JUJU_UNIT_NAME is not valid UTF-8: "r/\xff""#);
        let e = HookEnv::from_lookup(lookup("JUJU_REMOTE_UNIT")).unwrap_err();
        assert_eq!(e.name, "JUJU_REMOTE_UNIT");
    }

    #[test]
    fn shown_escapes_and_cuts_to_a_short_prefix() {
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(shown(OsStr::new("hooks/install")), r#""hooks/install""#);
        assert_eq!(shown(OsStr::new("a\nb\"c")), r#""a\nb\"c""#);
        assert_eq!(shown(OsStr::from_bytes(b"x\xff\xfey")), r#""x\xff\xfey""#);
        let exact = "a".repeat(SHOWN_MAX);
        assert_eq!(shown(OsStr::new(&exact)), format!("\"{exact}\""));
        let long = "b".repeat(120_000);
        assert_eq!(shown(OsStr::new(&long)), format!("\"{}\"…", "b".repeat(SHOWN_MAX)));
        // An escape is never split: 32 escaped newlines fill the 64 characters, the 33rd does not fit.
        let newlines = shown(OsStr::new(&"\n".repeat(40)));
        assert_eq!(newlines, format!("\"{}\"…", "\\n".repeat(SHOWN_MAX / 2)));
        let invalid = shown(OsStr::from_bytes(&[0xff; 100]));
        assert!(invalid.ends_with("\"…") && invalid.chars().count() <= SHOWN_MAX + 3, "{invalid}");
    }
}
