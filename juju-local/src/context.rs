//! The running hook's context, shared between the hook runner (agent side) and the hook tools.
//!
//! Juju's tools talk to the unit agent over `JUJU_AGENT_SOCKET_ADDRESS`; here that address is the path
//! of a JSON file in the unit dir (`agents/unit-<app>-<n>/agent.socket`) that exists only while a hook
//! runs. It holds the context id the tools must present, the hook's relation/action context and the
//! hook's deferred changes, which the runner commits only if the hook exits 0.

use crate::util;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Relation settings written by `relation-set` in this hook ("" deletes a key at commit).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct RelationChanges {
    pub unit: BTreeMap<String, String>,
    pub app: BTreeMap<String, String>,
}

/// Deferred changes: discarded when the hook fails.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Pending {
    pub pod_spec: Option<String>,
    pub relations: BTreeMap<u32, RelationChanges>,
    /// key → Some(value) to set, None to delete.
    pub state: BTreeMap<String, Option<String>>,
    pub ports: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct ActionContext {
    pub name: String,
    pub uuid: String,
    pub params: Value,
    pub results: BTreeMap<String, String>,
    pub failed: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct HookContext {
    pub id: String,
    pub model_dir: PathBuf,
    pub app: String,
    pub unit: u32,
    /// Empty for actions.
    pub hook: String,
    pub relation_id: Option<u32>,
    pub remote_unit: Option<String>,
    pub remote_app: Option<String>,
    pub action: Option<ActionContext>,
    pub pending: Pending,
    /// Set by leader-set so the runner fires leader-settings-changed on the other units.
    pub leader_settings_changed: bool,
}

impl HookContext {
    pub fn unit_name(&self) -> String {
        format!("{}/{}", self.app, self.unit)
    }

    pub fn load(path: &Path) -> Result<HookContext> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("corrupt hook context {}", path.display()))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        util::atomic_write(path, &serde_json::to_vec_pretty(self)?)
    }
}
