//! The Redis logic of the charm: pure functions, and the handlers that apply them.
//!
//! - [`config`] turns `config-get --all --format json` output into a validated [`RedisConfig`], or into
//!   [`ConfigErrors`] whose text is the `blocked` status message;
//! - [`podspec`] renders the version 3 pod spec (and the redis.conf inside it) that the leader pipes to
//!   `pod-spec-set`, and the workload version for `application-version-set`;
//! - [`relation`] is the data published on the `db` relation;
//! - [`handlers`] wires these into the reactive engine (the only part that acts through hook tools).

pub mod auth;
pub mod config;
pub mod handlers;
pub mod podspec;
pub mod relation;

pub use config::{ConfigError, ConfigErrors, RedisConfig};
pub use podspec::{ImageDetails, image_version, redis_conf, render_pod_spec};
