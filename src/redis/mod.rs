//! The Redis logic of the charm: pure functions, no hook tools and no I/O.
//!
//! - [`config`] turns `config-get --all --format json` output into a validated [`RedisConfig`], or into
//!   [`ConfigErrors`] whose text is the `blocked` status message.

pub mod config;

pub use config::{ConfigError, ConfigErrors, RedisConfig};
