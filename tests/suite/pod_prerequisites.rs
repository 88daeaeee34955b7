//! The check the root-only suites (`e2e_local`, `soak`) run first (`support::local::require_pods`): on a
//! machine lacking root, bwrap, ip, redis-server, the built charm or juju-local, each of their tests fails
//! with one line naming exactly what is missing, not somewhere inside juju-local.

use std::path::Path;

use crate::support::TempDir;
use crate::support::local::{POD_COMMANDS, missing_for_pods, needs_line};

#[test]
fn nothing_is_missing_for_root_with_every_command_the_charm_and_juju_local() {
    let dir = TempDir::new("prereq-all");
    let (charm, jl) = (dir.path().join("redis-k8s.charm"), dir.path().join("juju-local"));
    std::fs::write(&charm, b"zip").unwrap();
    std::fs::write(&jl, b"elf").unwrap();
    assert_eq!(missing_for_pods(0, |_| true, &charm, Some(&jl)), Vec::<String>::new());
}

#[test]
fn a_bare_machine_gets_one_line_naming_everything_missing() {
    let nowhere = Path::new("/nonexistent/redis-k8s.charm");
    let missing = missing_for_pods(65534, |_| false, nowhere, None);
    let line = needs_line("e2e_local", &missing);
    assert!(!line.contains('\n'), "{line}");
    assert!(line.starts_with("e2e_local needs root (network namespaces), "), "{line}");
    for what in ["bwrap, ip and redis-server on PATH", "/nonexistent/redis-k8s.charm", "make charm", "juju-local"] {
        assert!(line.contains(what), "{what:?} not in: {line}");
    }
    assert_eq!(missing.len(), 4, "{missing:?}");
}

#[test]
fn only_what_is_missing_is_named() {
    let dir = TempDir::new("prereq-some");
    let charm = dir.path().join("redis-k8s.charm");
    std::fs::write(&charm, b"zip").unwrap();
    let set_but_absent = dir.path().join("no-juju-local");
    let missing = missing_for_pods(0, |c| c != "bwrap", &charm, Some(&set_but_absent));
    assert_eq!(missing.len(), 2, "{missing:?}");
    assert_eq!(missing[0], "bwrap on PATH (`make setup`)");
    assert!(missing[1].contains("no-juju-local") && missing[1].contains("JUJU_LOCAL_BIN"), "{missing:?}");
    assert!(POD_COMMANDS.contains(&"redis-server") && POD_COMMANDS.contains(&"bwrap"));
}
