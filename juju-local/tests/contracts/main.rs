//! juju-local's integration tests, one binary (`cargo test -p juju-local --test contracts`): one module per
//! group of the Juju and Kubernetes rules the stand-in follows, each test on its own throw-away model with
//! small POSIX-sh charms built by `common`. Filter by module, e.g. `-- kubelet::`.
//!
//! Every test but `pebble::` (the Pebble stand-in, which needs only unix sockets and `/bin/sh`) runs real pods, so
//! each needs root (network namespaces and `/run/juju-local`), `bwrap`,
//! `ip` and `redis-server`; without them each fails first with one line naming what is missing
//! (`common::require_pods`).

mod common;

mod actions;
mod charm_relations;
mod deploy;
mod dns;
mod failures;
mod hook_env;
mod kubelet;
mod pebble;
mod relations;
mod sidecar;
mod teardown;
mod versions;
