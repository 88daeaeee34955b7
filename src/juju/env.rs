//! What Juju tells a hook through its environment (reference §1.1).
//!
//! Juju builds a hook's environment from scratch; this reads the variables the charm needs once, at hook
//! start, into a plain struct that the rest of the charm is handed. Tests build one directly.

use std::collections::BTreeMap;
use std::path::PathBuf;

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
    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads a given variable map (empty values count as unset, as Juju sets some to "").
    pub fn from_vars(vars: &BTreeMap<String, String>) -> Self {
        let get = |k: &str| vars.get(k).filter(|v| !v.is_empty()).cloned();
        HookEnv {
            unit_name: get("JUJU_UNIT_NAME").unwrap_or_default(),
            charm_dir: get("JUJU_CHARM_DIR").or_else(|| get("CHARM_DIR")).map(PathBuf::from).unwrap_or_default(),
            relation: get("JUJU_RELATION"),
            relation_id: get("JUJU_RELATION_ID"),
            remote_unit: get("JUJU_REMOTE_UNIT"),
            remote_app: get("JUJU_REMOTE_APP"),
            departing_unit: get("JUJU_DEPARTING_UNIT"),
            action_name: get("JUJU_ACTION_NAME"),
            juju_version: get("JUJU_VERSION"),
            model_name: get("JUJU_MODEL_NAME"),
        }
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
}
