//! The behaviour of the layers the original charms.reactive charm was built from, on this crate's engine.
//!
//! - [`status`]: maintenance goes out at once; blocked/waiting/active are queued and exactly one is sent
//!   at the end of a successful hook (layer:status);
//! - [`docker_resource`]: fetching `oci-image` resources into flags and image details
//!   (layer:docker-resource), with [`image_ref`] checking the image path against the OCI reference grammar;
//! - [`caas_base`]: sending the pod spec, leader only and only when it changed (layer:caas-base).
//!
//! Their options come from the charm's `layer.yaml`, which ships with the binary, so it is compiled in rather
//! than read at every hook; which resources exist comes from [`crate::meta::CharmMeta`] (metadata.yaml, compiled
//! in the same way and parsed once per process).

pub(crate) mod caas_base;
pub mod docker_resource;
pub mod image_ref;
pub(crate) mod status;

use serde::Deserialize;

use crate::reactive;

/// The charm's per-hook state while handlers run (nothing here outlives the hook): the status layer's queue and
/// the Redis logic's handles (its administration seam and what it read of the peer relation).
#[derive(Default)]
pub struct State {
    pub status: status::Queue,
    pub redis: crate::redis::HookState,
    /// How the workload is run: which archive this binary runs from.
    pub flavour: crate::workload::Flavour,
    /// The sidecar flavour's Pebbles (one per workload container), made on first use; set beforehand by tests.
    pub pebble: Option<crate::workload::pebble::PebbleRuntime>,
}

/// The handler context every layer and the Redis handlers use.
pub type Ctx<'h> = reactive::Ctx<'h, State>;

/// The charm's `layer.yaml`, as shipped beside the binary.
pub const LAYER_YAML: &str = include_str!("../../layer.yaml");

/// Layer options (`options:` in layer.yaml), with the layers' defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `docker-resource.set-status` (default true).
    pub docker_resource_set_status: bool,
    /// `status.patch-hookenv` (default true; accepted, no other effect here).
    pub status_patch_hookenv: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { docker_resource_set_status: true, status_patch_hookenv: true }
    }
}

impl Options {
    /// Reads the options from layer.yaml text; anything missing keeps its default.
    pub fn parse(text: &str) -> anyhow::Result<Options> {
        #[derive(Deserialize, Default)]
        struct LayerYaml {
            #[serde(default)]
            options: Opts,
        }
        #[derive(Deserialize, Default)]
        struct Opts {
            #[serde(default, rename = "docker-resource")]
            docker_resource: DockerOpts,
            #[serde(default)]
            status: StatusOpts,
        }
        #[derive(Deserialize, Default)]
        struct DockerOpts {
            #[serde(rename = "set-status")]
            set_status: Option<bool>,
        }
        #[derive(Deserialize, Default)]
        struct StatusOpts {
            #[serde(rename = "patch-hookenv")]
            patch_hookenv: Option<bool>,
        }
        let y: LayerYaml = serde_yaml::from_str(text)?;
        let d = Options::default();
        Ok(Options {
            docker_resource_set_status: y.options.docker_resource.set_status.unwrap_or(d.docker_resource_set_status),
            status_patch_hookenv: y.options.status.patch_hookenv.unwrap_or(d.status_patch_hookenv),
        })
    }

    /// The options of the shipped layer.yaml (defaults if it cannot be read, which a test rules out).
    pub fn shipped() -> Options {
        Options::parse(LAYER_YAML).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_layer_yaml_parses_and_sets_the_options() {
        let o = Options::parse(LAYER_YAML).unwrap();
        assert!(o.docker_resource_set_status);
        assert!(o.status_patch_hookenv);
        let off = Options::parse("options:\n  docker-resource:\n    set-status: false\n").unwrap();
        assert!(!off.docker_resource_set_status);
        assert_eq!(Options::parse("includes: []\n").unwrap(), Options::default());
    }
}
