//! The Juju boundary: the only code in the charm that runs hook tools or reads Juju's environment.
//!
//! Data flows one way: [`env::HookEnv`] says which unit and relation a hook is about; charm code asks
//! [`HookTools`] typed questions (`config()`, `is_leader()`, `pod_spec_set(..)`); `HookTools` turns each
//! into one call on a [`ToolRunner`]: a [`ProcessRunner`] in production, a [`fake::FakeJuju`] in tests.

pub mod env;
pub mod error;
#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod hook_tools;
pub mod runner;

pub use env::HookEnv;
pub use error::ToolError;
pub use hook_tools::{HookTools, LogLevel, Settings, Status};
pub use runner::{ProcessRunner, ToolRunner};
