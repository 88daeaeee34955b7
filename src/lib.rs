//! redis-k8s: a Juju podspec charm for Redis on Kubernetes, compiled to one static binary.
//!
//! Data flows one way through the crate:
//!
//! - [`meta`] is what the charm's metadata.yaml, config.yaml and actions.yaml say, parsed once: its endpoints,
//!   storage, resources, actions, config options and the hook names they give;
//! - [`dispatch`] decides which hook Juju is running (`JUJU_DISPATCH_PATH`, else `argv[0]`);
//! - [`charm`] runs that hook: it builds the handler registry and hands it to the reactive engine;
//! - [`reactive`] is the engine: flags, handlers, the dispatch loop and the crash-safe flag store;
//! - [`layers`] are the behaviours of the layers the original charm used (docker-resource, status,
//!   caas-base), written as handlers and helpers on top of the engine;
//! - [`redis`] is the Redis logic: config validation, what runs in the pods, the `db` relation, its handlers;
//! - [`workload`] is the seam between what should run and how: a [`workload::Workload`] description, and the
//!   runtime that makes it so (the pod spec and `pod-spec-set` today; Pebble in the sidecar flavour);
//! - [`juju`] is the only code that talks to Juju: hook tools behind one trait, and the hook environment.
//! - [`pebble`] is the only code that talks to Pebble, the service manager in each workload container of the
//!   sidecar flavour: one HTTP transport trait over its unix socket, typed calls, a recording fake. Unused yet.
//!
//! The local stand-in for a Juju controller and Kubernetes (`juju-local`) is its own crate in `juju-local/`
//! and uses none of this crate's internals.

// The crate's documentation is read with its private items (`make lint` runs rustdoc with
// --document-private-items): the modules a reader follows the data flow through are crate-private.
#![allow(rustdoc::private_intra_doc_links)]

pub mod charm;
pub mod dispatch;
pub mod juju;
pub mod layers;
pub mod meta;
pub mod pebble;
pub mod reactive;
pub mod redis;
pub mod workload;

/// Test-only crash injection: when `REDIS_K8S_CRASH_AT` names this point, the process kills itself with
/// SIGKILL right here, as an operator pod eviction would. Used by the crash-safety tests; a no-op otherwise.
pub fn crash_point(name: &str) {
    if std::env::var_os("REDIS_K8S_CRASH_AT").is_some_and(|v| v == name) {
        // SAFETY: kill(2) on our own pid; no memory is touched.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
