//! The workload seam: what should run, said once, whichever way Juju runs it.
//!
//! The Redis logic describes its workload as a [`Workload`]: containers (image, command, ports, the volumes they
//! mount and where, a readiness and a liveness check), volumes (files the charm writes, a Secret, scratch space)
//! and the Secrets to create. It never says how that reaches Kubernetes. A [`Runtime`] makes it so:
//!
//! - [`PodSpecRuntime`] (Juju 2.8-3.6 podspec charms) renders it as a version 3 pod spec ([`podspec`]) and hands it
//!   to `pod-spec-set` through the caas-base layer, only when it changed;
//! - [`pebble::PebbleRuntime`] (the sidecar flavour, Juju 3.1-4.0) sends each workload container's Pebble its
//!   layer and files from the same description, only what changed, on every unit.
//!
//! Which one runs is the [`Flavour`] of the archive the binary runs from ([`Flavour::of_charm_dir`]).
//!
//! Handlers hold a `&mut dyn Runtime` and never ask which flavour they are in.

use anyhow::Result;

use crate::layers::{Ctx, caas_base, status};

pub mod pebble;
pub mod podspec;

/// The image to run, from the oci-image resource (`registrypath`, `username`, `password`).
///
/// Empty `username` and `password` mean a public image; the pod spec leaves them out.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageDetails {
    pub image_path: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub password: String,
}

/// Hides the password, so logging an `ImageDetails` never leaks it.
impl std::fmt::Debug for ImageDetails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let password = if self.password.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("ImageDetails")
            .field("image_path", &self.image_path)
            .field("username", &self.username)
            .field("password", &password)
            .finish()
    }
}

/// Everything that should run for the application: one pod's containers (every unit runs the same), the
/// volumes they mount, and the Secrets the volumes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub containers: Vec<Container>,
    pub volumes: Vec<Volume>,
    pub secrets: Vec<Secret>,
}

/// One container: its image, its command, what it listens on, what it mounts, and how it is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub name: &'static str,
    /// What the pod spec runs it from (the podspec flavour's oci-image resource); `None` where Juju runs the image
    /// itself (the sidecar flavour: the container's `resource:` in metadata.yaml).
    pub image: Option<ImageDetails>,
    pub command: Vec<String>,
    pub ports: Vec<Port>,
    /// Volumes by name, each at a path.
    pub mounts: Vec<Mount>,
    /// Ready to serve: a container that is not gets no traffic and holds up a rolling restart.
    pub ready: Check,
    /// Alive: one that fails this long enough is restarted.
    pub alive: Check,
}

/// A named port the container listens on (TCP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: &'static str,
    pub port: u16,
}

/// A volume mounted at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub volume: &'static str,
    pub path: String,
}

/// A volume: files the charm writes (delivered to running containers without a restart), a Secret's keys as
/// files, or scratch space that lives as long as the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub name: &'static str,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `(file name, content)`, in order.
    Files(Vec<(&'static str, String)>),
    /// The keys of the Secret named so, as files of this mode.
    Secret {
        name: String,
        mode: u32,
    },
    Scratch,
}

/// A Secret to create: its keys and their values.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    pub name: String,
    pub data: std::collections::BTreeMap<&'static str, String>,
}

/// Hides the values.
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret").field("name", &self.name).field("keys", &self.data.keys()).finish()
    }
}

/// How a container is checked, and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub how: Probe,
    pub initial_delay_s: u32,
    pub period_s: u32,
    pub timeout_s: u32,
    /// Failures in a row before it counts.
    pub threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A command run in the container; exit 0 passes.
    Exec(Vec<String>),
    /// A TCP connection to this port.
    Tcp(u16),
}

/// What a [`Runtime::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The workload was handed to Juju.
    Changed,
    /// It is what was handed over last: nothing to do.
    Unchanged,
}

pub use crate::meta::Flavour;

/// Makes `workload` what runs, the way this unit's flavour does it: the leader's pod spec, or this unit's own
/// pod's Pebbles (see [`Runtime::apply`]).
pub fn apply(ctx: &mut Ctx<'_>, workload: &Workload) -> Result<Applied> {
    match ctx.charm.flavour {
        Flavour::PodSpec => PodSpecRuntime.apply(ctx, workload),
        Flavour::Sidecar => {
            let mut runtime = ctx.charm.pebble.take().unwrap_or_else(|| pebble::PebbleRuntime::real(workload));
            let applied = runtime.apply(ctx, workload);
            ctx.charm.pebble = Some(runtime);
            applied
        }
    }
}

/// Why this unit's pod is not ready, where the charm must say it: in the sidecar flavour, from the containers'
/// Pebble readiness checks. `None` in the podspec flavour, where Juju shows the pod's readiness itself.
pub fn not_ready(ctx: &mut Ctx<'_>, workload: &Workload) -> Result<Option<String>> {
    match ctx.charm.flavour {
        Flavour::PodSpec => Ok(None),
        Flavour::Sidecar => {
            let mut runtime = ctx.charm.pebble.take().unwrap_or_else(|| pebble::PebbleRuntime::real(workload));
            let found = runtime.not_ready(workload);
            ctx.charm.pebble = Some(runtime);
            found
        }
    }
}

/// Whether every unit applies the workload to its own pod (the sidecar flavour), rather than the leader for all.
pub fn per_unit(flavour: Flavour) -> bool {
    flavour == Flavour::Sidecar
}

/// Makes a [`Workload`] what runs, the way this flavour of the charm does it.
pub trait Runtime {
    /// Hands `workload` over if it differs from what was handed over last (leader only).
    fn apply(&mut self, ctx: &mut Ctx<'_>, workload: &Workload) -> Result<Applied>;
}

/// The podspec flavour: the pod spec is rendered and sent with `pod-spec-set` when it changed, saying so first
/// (`maintenance "configuring container"`).
#[derive(Debug, Default, Clone, Copy)]
pub struct PodSpecRuntime;

impl Runtime for PodSpecRuntime {
    fn apply(&mut self, ctx: &mut Ctx<'_>, workload: &Workload) -> Result<Applied> {
        let spec = podspec::render(workload)?;
        if !caas_base::would_send(ctx, &spec) {
            return Ok(Applied::Unchanged);
        }
        status::maintenance(ctx, "configuring container")?;
        caas_base::pod_spec_set(ctx, &spec)?;
        Ok(Applied::Changed)
    }
}
