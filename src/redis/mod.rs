//! The Redis logic of the charm: pure functions, and the handlers that apply them.
//!
//! - [`config`] turns `config-get --all --format json` output into a validated [`RedisConfig`], or into
//!   [`ConfigErrors`] whose text is the `blocked` status message;
//! - [`podspec`] renders the version 3 pod spec (and the redis.conf inside it) that the leader pipes to
//!   `pod-spec-set`, and the workload version for `application-version-set`;
//! - [`relation`] is the data published on the `db` relation;
//! - [`auth`] is where the password comes from and where it is kept;
//! - [`resp`] is a small, bounded RESP2 client for asking a pod's Redis or Sentinel about replication,
//!   and [`resolve`] the name resolver it uses (a static glibc binary cannot rely on getaddrinfo);
//! - [`topology`] is how many units there are and which pod is the primary;
//! - [`handlers`] wires these into the reactive engine, and [`actions`] serves the charm's actions (the
//!   only parts that act through hook tools).

pub mod actions;
pub mod admin;
pub mod auth;
pub mod config;
pub mod handlers;
pub mod podspec;
pub mod relation;
pub mod resolve;
pub mod resp;
pub mod topology;

pub use config::{ConfigError, ConfigErrors, RedisConfig};
pub use podspec::{ImageDetails, Topology, image_version, redis_conf, render_pod_spec};
