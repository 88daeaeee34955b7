//! The reactive engine: flags, handlers, the dispatch loop and the crash-safe flag store.
//!
//! A faithful reimplementation of charms.reactive's documented semantics (see the README's list of
//! deliberate differences). Charm code uses only the [`Registry`] to declare handlers and the
//! [`Ctx`] handed to them (flags, kv, tools, config); [`Engine::run_hook`] drives one hook end to end.

mod automatic;
mod bus;
mod context;
mod flags;
mod handler;
mod kv;
mod run;
pub mod store;

pub use automatic::{AutoSpec, ConfigFlag, EndpointFlag, LEADER_FLAG, config_flag, endpoint_flag, joined_units};
pub use bus::{MAX_ITERATIONS, Report, dispatch};
pub use context::Ctx;
pub use flags::{Flags, Trigger};
pub use handler::{HandlerBuilder, Registry, hook_matches};
pub use kv::{Kv, data_changed_key, hash_json};
pub use run::{Engine, Finish, Outcome, action_flag};
pub use store::{Store, StoreNames, UnitState};
