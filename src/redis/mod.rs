//! The Redis logic of the charm: pure functions, no hook tools and no I/O.
//!
//! - [`config`] turns `config-get --all --format json` output into a validated [`RedisConfig`], or into
//!   [`ConfigErrors`] whose text is the `blocked` status message;
//! - [`podspec`] renders the version 3 pod spec (and the redis.conf inside it) that the leader pipes to
//!   `pod-spec-set`, and the workload version for `application-version-set`.

pub mod config;
pub mod podspec;

pub use config::{ConfigError, ConfigErrors, RedisConfig};
pub use podspec::{ImageDetails, image_version, redis_conf, render_pod_spec};
