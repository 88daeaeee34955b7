//! Every integration suite that needs no root, as one test binary (`cargo test --test suite`): one link of the
//! charm library and `tests/support/` instead of one per suite. Each module is one suite, as it was when each
//! was a target of its own; filter by module, e.g. `cargo test --test suite -- fault_matrix::`.
//!
//! Some start the built binary, a real redis-server on a loopback port or charm-tools' `charm-proof`; none
//! needs root or a network namespace. The suites that do (`tests/e2e_local.rs`, `tests/soak.rs`) are targets
//! of their own, which fail with one line naming what the machine lacks when run without it.

#[path = "../support/mod.rs"]
mod support;

mod call_budget;
mod charm_hooks;
mod crash_points;
mod fault_matrix;
mod hook_binary;
mod hostile_input;
mod packaging;
mod packaging_sidecar;
mod pod_prerequisites;
mod reactive_engine;
mod secrets;
mod store_budget;
mod store_compat;
