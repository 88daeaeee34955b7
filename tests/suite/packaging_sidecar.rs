//! The built `redis-k8s-sidecar.charm`: what Juju 3.1 to 4.0 will read from it (issue 16).
//!
//! The rules are Juju's own, read from its source (wallyworld/juju, the 4.0 tree ce5b95b8 `internal/charm/meta.go`
//! and `charm.go`, which keep juju/charm v12's rules for Juju 3.x): a charm is format v2 only with a
//! `manifest.yaml` naming its bases and no `series` (`MetaFormatReasons`); v1 keys beside v2 keys are "ambiguous
//! metadata" (`ensureUnambiguousFormat`); `min-juju-version` is refused in v2 (`checkV2`); a container's
//! `resource` must name a declared `oci-image` resource and each mount a declared storage with a location
//! (`parseContainers`, `parseMounts`); endpoints may not use the reserved `juju`/`juju-` names (`reservedName`).
//!
//! The archive comes from `REDIS_K8S_SIDECAR_CHARM`, else `<repo>/redis-k8s-sidecar.charm`; `make test` builds
//! it first. A missing archive fails these tests.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::support::{REPO, TempDir};

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

/// (name in the archive, file in the repository).
const FILES: &[(&str, &str)] = &[
    ("metadata.yaml", "sidecar/metadata.yaml"),
    ("manifest.yaml", "sidecar/manifest.yaml"),
    ("config.yaml", "config.yaml"),
    ("actions.yaml", "actions.yaml"),
    ("README.md", "README.md"),
    ("copyright", "copyright"),
];

fn archive(env: &str, file: &str) -> PathBuf {
    let path = std::env::var_os(env)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(REPO).join(file));
    assert!(path.is_file(), "{} does not exist: build it with `make charm` (or run `make test`)", path.display());
    path
}

/// (name, mode, content) of every entry of an archive.
fn entries(path: &Path) -> Vec<(String, u32, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(fs::File::open(path).unwrap()).expect("not a zip archive");
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().unwrap().into_owned(), f.unix_mode().unwrap_or(0), data)
        })
        .collect()
}

fn sidecar() -> Vec<(String, u32, Vec<u8>)> {
    entries(&archive("REDIS_K8S_SIDECAR_CHARM", "redis-k8s-sidecar.charm"))
}

fn content<'a>(entries: &'a [(String, u32, Vec<u8>)], name: &str) -> &'a [u8] {
    &entries.iter().find(|(n, _, _)| n == name).unwrap_or_else(|| panic!("no {name} in the archive")).2
}

fn yaml(bytes: &[u8]) -> Mapping {
    serde_yaml::from_slice(bytes).unwrap()
}

fn get<'a>(m: &'a Mapping, k: &str) -> Option<&'a Value> {
    m.get(Value::from(k))
}

#[test]
fn the_sidecar_archive_holds_exactly_the_charm_and_the_same_binary() {
    let entries = sidecar();
    let names: BTreeSet<&str> = entries.iter().map(|(n, _, _)| n.as_str()).collect();
    let mut expected: BTreeSet<&str> = FILES.iter().map(|(n, _)| *n).collect();
    expected.insert("dispatch");
    assert_eq!(names, expected, "the sidecar archive's entries (Juju 3 runs dispatch: no hooks/ or actions/)");
    for (name, repo) in FILES {
        let want = fs::read(Path::new(REPO).join(repo)).unwrap();
        assert!(content(&entries, name) == want.as_slice(), "{name} differs from {repo}: rerun `make charm`");
        let mode = entries.iter().find(|(n, _, _)| n == name).unwrap().1;
        assert_eq!(mode & S_IFMT, S_IFREG, "{name} is a regular file");
    }
    let (_, mode, dispatch) = entries.iter().find(|(n, _, _)| n == "dispatch").unwrap();
    assert_eq!(*mode, S_IFREG | 0o755, "dispatch mode {mode:o}");
    let podspec = entries_of_podspec();
    assert!(dispatch == content(&podspec, "dispatch"), "both archives ship the same binary");
}

fn entries_of_podspec() -> Vec<(String, u32, Vec<u8>)> {
    entries(&archive("REDIS_K8S_CHARM", "redis-k8s.charm"))
}

/// Format v2 and nothing of v1: `series`, `min-juju-version` and `deployment` would make it ambiguous or v1.
#[test]
fn metadata_is_a_v2_sidecar_charm_for_juju_3_1_to_4_0() {
    let entries = sidecar();
    let meta = yaml(content(&entries, "metadata.yaml"));
    for v1 in ["series", "min-juju-version", "deployment"] {
        assert!(get(&meta, v1).is_none(), "{v1} is a v1 key: beside containers/assumes it is ambiguous metadata");
    }
    let assumes: Vec<String> = serde_yaml::from_value(get(&meta, "assumes").expect("assumes").clone()).unwrap();
    assert!(assumes.iter().any(|a| a == "k8s-api"), "{assumes:?}");
    assert!(assumes.iter().any(|a| a == "juju >= 3.1"), "{assumes:?}");

    let resources = get(&meta, "resources").and_then(Value::as_mapping).expect("resources");
    let storage = get(&meta, "storage").and_then(Value::as_mapping).expect("storage");
    let containers = get(&meta, "containers").and_then(Value::as_mapping).expect("containers");
    let names: Vec<&str> = containers.keys().filter_map(Value::as_str).collect();
    assert_eq!(names, ["redis", "sentinel"]);
    for (name, c) in containers {
        let name = name.as_str().unwrap();
        let c = c.as_mapping().unwrap();
        let res = get(c, "resource").and_then(Value::as_str).unwrap_or_else(|| panic!("{name}: no resource"));
        let declared = resources.get(Value::from(res)).and_then(Value::as_mapping);
        let kind = declared.and_then(|r| get(r, "type")).and_then(Value::as_str);
        assert_eq!(kind, Some("oci-image"), "{name}: resource {res} must be a declared oci-image");
        for m in get(c, "mounts").and_then(Value::as_sequence).into_iter().flatten() {
            let m = m.as_mapping().unwrap();
            let st = get(m, "storage").and_then(Value::as_str).expect("storage must be specified on mount");
            let loc = get(m, "location").and_then(Value::as_str).expect("location must be specified on mount");
            assert!(loc.starts_with('/'), "{name}: mount location {loc}");
            assert!(storage.get(Value::from(st)).is_some(), "{name}: storage {st:?} not valid");
        }
    }
    let data = get(storage, "data").and_then(Value::as_mapping).unwrap();
    assert_eq!(get(data, "type").and_then(Value::as_str), Some("filesystem"), "type must be specified");
    let mounts: Vec<String> = get(containers.get(Value::from("redis")).unwrap().as_mapping().unwrap(), "mounts")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .map(|m| {
            format!(
                "{}:{}",
                get(m.as_mapping().unwrap(), "storage").unwrap().as_str().unwrap(),
                get(m.as_mapping().unwrap(), "location").unwrap().as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(mounts, ["data:/data"], "Redis's data directory is the data storage");
    for section in ["provides", "requires", "peers"] {
        for (ep, _) in get(&meta, section).and_then(Value::as_mapping).into_iter().flatten() {
            let ep = ep.as_str().unwrap();
            assert!(ep != "juju" && !ep.starts_with("juju-"), "{ep}: a reserved relation name");
        }
    }
    // The same charm: the podspec archive's endpoints, and the source endpoint a migration from it relates.
    let podspec = yaml(content(&entries_of_podspec(), "metadata.yaml"));
    for section in ["name", "provides", "peers"] {
        assert_eq!(get(&meta, section), get(&podspec, section), "{section} differs between the archives");
    }
    assert!(get(&podspec, "requires").is_none());
    let requires = get(&meta, "requires").and_then(Value::as_mapping).expect("requires");
    let names: Vec<&str> = requires.keys().filter_map(Value::as_str).collect();
    assert_eq!(names, ["source"]);
    let source = requires.get(Value::from("source")).and_then(Value::as_mapping).unwrap();
    assert_eq!(get(source, "interface").and_then(Value::as_str), Some("redis"));
    assert_eq!(get(source, "limit").and_then(Value::as_u64), Some(1), "one source at a time");
}

/// `manifest.yaml` names the bases: without it a charm is not v2 (`MetaFormatReasons`), and Juju 4.0 refuses
/// format v1 outright (`Meta.Check`: "charm metadata without bases in manifest").
#[test]
fn manifest_names_ubuntu_bases_with_a_string_channel() {
    let entries = sidecar();
    let manifest = yaml(content(&entries, "manifest.yaml"));
    let bases = get(&manifest, "bases").and_then(Value::as_sequence).expect("bases");
    assert!(!bases.is_empty());
    for b in bases {
        let b = b.as_mapping().unwrap();
        assert_eq!(get(b, "name").and_then(Value::as_str), Some("ubuntu"));
        let channel = get(b, "channel").expect("channel");
        assert!(channel.is_string(), "channel {channel:?} must be a string (unquoted 22.04 is a float)");
        let arch = get(b, "architectures").and_then(Value::as_sequence).expect("architectures");
        assert!(arch.iter().any(|a| a.as_str() == Some("amd64")), "{arch:?}");
    }
}

/// Unpacked as Juju unpacks it, the binary knows it is in the sidecar archive: it answers to the containers'
/// Pebble hooks and to the same actions.
#[test]
fn the_unpacked_binary_answers_to_the_pebble_hooks() {
    let dir = TempDir::new("sidecar-unpacked");
    for (name, mode, data) in sidecar() {
        let path = dir.path().join(&name);
        fs::write(&path, &data).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o777)).unwrap();
    }
    let out = std::process::Command::new(dir.path().join("dispatch")).arg("--list-hooks").env_clear().output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: BTreeSet<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
    for hook in ["redis-pebble-ready", "sentinel-pebble-ready", "redis-pebble-check-failed", "db-relation-joined"] {
        assert!(listed.contains(hook), "{hook} missing from {listed:?}");
    }
    assert!(listed.contains("actions/rotate-password"));
}
