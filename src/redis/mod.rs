//! The Redis logic of the charm: pure functions, and the handlers that apply them.
//!
//! - [`config`] turns `config-get --all --format json` output into a validated [`RedisConfig`], or into
//!   [`ConfigErrors`] whose text is the `blocked` status message;
//! - [`pod`] describes what runs in every pod (containers, checks, and the files inside it, from
//!   `src/redis/pod/`) as a [`crate::workload::Workload`], and the workload version for `application-version-set`;
//! - [`peers`] owns the peer relation: the password, its rotation and the primary, shared by every unit;
//! - [`auth`] decides the password and runs its rotation;
//! - [`live`] applies what Redis and Sentinel can change at run time to the running pods and checks their health;
//! - [`admin`] is the seam to running Redis and Sentinel servers (a trait, the RESP implementation, a fake), over
//!   [`resp`], a small bounded RESP2 client, and [`resolve`], the name resolver it uses (a static glibc binary
//!   cannot rely on getaddrinfo);
//! - [`topology`] names pods and says what clients are told; [`relation`] is the data published on `db`;
//! - [`migration`] copies a deployed podspec application's data into a sidecar one (the `source` endpoint);
//! - [`handlers`] wires these into the reactive engine, and [`actions`] serves the charm's actions.

pub(crate) mod actions;
pub mod admin;
pub(crate) mod auth;
pub mod config;
pub(crate) mod handlers;
pub(crate) mod live;
pub(crate) mod migration;
pub(crate) mod peers;
pub(crate) mod pod;
pub(crate) mod relation;
pub mod resolve;
pub mod resp;
pub(crate) mod topology;

pub use config::{ConfigError, ConfigErrors, RedisConfig};
pub use pod::{Deployment, ImageDetails, image_version, redis_conf, render_pod_spec};

/// What the Redis logic holds for the length of one hook: its handle on the running servers and what it read of
/// the peer relation (read at most once per hook).
pub struct HookState {
    pub admin: admin::Admin,
    /// The application bag as this hook sees it (read at most once, changed by the leader's writes).
    pub shared: Option<peers::Shared>,
    /// The bag as read, once the leader has changed it (what [`peers::flush`] compares against).
    pub shared_as_read: Option<peers::Shared>,
    /// Whether this hook has read the bag from Juju (else `shared` is this unit's copy).
    pub shared_fresh: bool,
    /// Whether this hook put a pending password in force (its previous one is not retired in the same hook).
    pub promoted: bool,
    /// Why the workload could not be given its configuration in this hook (a workload container's Pebble not
    /// answering), for the status.
    pub workload_waiting: Option<String>,
}

impl Default for HookState {
    fn default() -> Self {
        HookState::with_admin(admin::Admin::real())
    }
}

impl HookState {
    /// A hook state administering servers through `admin` (tests pass a fake).
    pub fn with_admin(admin: admin::Admin) -> HookState {
        HookState {
            admin,
            shared: None,
            shared_as_read: None,
            shared_fresh: false,
            promoted: false,
            workload_waiting: None,
        }
    }
}
