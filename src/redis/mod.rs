//! The Redis logic of the charm: pure functions and no hook tools; only [`resp`] touches the network.
//!
//! - [`config`] turns `config-get --all --format json` output into a validated [`RedisConfig`], or into
//!   [`ConfigErrors`] whose text is the `blocked` status message;
//! - [`podspec`] renders the version 3 pod spec (and the redis.conf inside it) that the leader pipes to
//!   `pod-spec-set`, and the workload version for `application-version-set`;
//! - [`resp`] is a small, bounded RESP2 client for asking a pod's Redis or Sentinel about replication (the one
//!   module here that does I/O, and only when called).

pub mod config;
pub mod podspec;
pub mod resp;

pub use config::{ConfigError, ConfigErrors, RedisConfig};
pub use podspec::{ImageDetails, Topology, image_version, redis_conf, render_pod_spec};
