//! The built `redis-k8s.charm`: what Juju 2.8–3.6 will read from it (reference: juju-versions-deploy.md).
//!
//! The archive comes from `REDIS_K8S_CHARM`, else `<repo>/redis-k8s.charm`; `make test` builds it first. A
//! missing archive fails these tests: a packaging test that passes without a package proves nothing.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use crate::support::{REPO, TempDir};

/// Files the archive holds besides `dispatch` and `hooks/*` (plus actions.yaml once the charm has one).
/// `copyright` is there because charm-proof warns without it.
const CHARM_FILES: &[&str] = &["metadata.yaml", "config.yaml", "layer.yaml", "README.md", "copyright"];

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

fn charm_path() -> PathBuf {
    let path = std::env::var_os("REDIS_K8S_CHARM")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(REPO).join("redis-k8s.charm"));
    assert!(path.is_file(), "{} does not exist: build it with `make charm` (or run `make test`)", path.display());
    path
}

/// One archive entry, read whole.
struct Entry {
    name: String,
    mode: u32,
    is_dir: bool,
    data: Vec<u8>,
}

fn entries() -> Vec<Entry> {
    let file = fs::File::open(charm_path()).unwrap();
    let mut zip = zip::ZipArchive::new(file).expect("the .charm is not a zip archive");
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            Entry { name: f.name().unwrap().into_owned(), mode: f.unix_mode().unwrap_or(0), is_dir: f.is_dir(), data }
        })
        .collect()
}

fn entry<'a>(entries: &'a [Entry], name: &str) -> &'a Entry {
    entries.iter().find(|e| e.name == name).unwrap_or_else(|| panic!("no {name} in the archive"))
}

/// The hook symlinks in the repository's hooks/ dir.
fn repo_hooks() -> BTreeSet<String> {
    fs::read_dir(Path::new(REPO).join("hooks"))
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let target = fs::read_link(e.path()).unwrap_or_else(|_| panic!("hooks/{name} is not a symlink"));
            assert_eq!(target, Path::new("../dispatch"), "hooks/{name}");
            name
        })
        .collect()
}

#[test]
fn the_archive_holds_exactly_the_charm() {
    let entries = entries();
    let names: BTreeSet<String> = entries.iter().map(|e| e.name.clone()).collect();
    assert_eq!(names.len(), entries.len(), "duplicate entries");

    let mut expected: BTreeSet<String> = CHARM_FILES.iter().map(|s| s.to_string()).collect();
    expected.insert("dispatch".into());
    if Path::new(REPO).join("actions.yaml").exists() {
        expected.insert("actions.yaml".into());
    }
    expected.extend(repo_hooks().into_iter().map(|h| format!("hooks/{h}")));
    expected.extend(declared_actions().into_iter().map(|a| format!("actions/{a}")));
    assert_eq!(names, expected, "the archive's entries");

    assert!(!names.contains("manifest.yaml"), "manifest.yaml breaks bundle deploys on 2.9.43+ and 3.1/3.2");
    assert!(!names.iter().any(|n| n.starts_with(".git") || n.contains("/.git")), "no .git in the archive");
    assert!(entries.iter().all(|e| !e.is_dir), "no directory entries are needed");
    // Juju 2.8.1+ clients refuse an archive without `dispatch` and with fewer than two `hooks/` entries.
    assert!(names.iter().filter(|n| n.contains("hooks/")).count() >= 2);

    // Stale-archive check: the files are the repository's, byte for byte.
    for f in CHARM_FILES {
        let repo = fs::read(Path::new(REPO).join(f)).unwrap();
        assert!(entry(&entries, f).data == repo, "{f} in the archive differs from the repo's: rerun `make charm`");
        assert_eq!(entry(&entries, f).mode & S_IFMT, S_IFREG, "{f} is a regular file");
    }
}

/// Actions declared in the repo's actions.yaml (none if there is no file).
fn declared_actions() -> BTreeSet<String> {
    match fs::read_to_string(Path::new(REPO).join("actions.yaml")) {
        Ok(text) => serde_yaml::from_str::<serde_yaml::Mapping>(&text)
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap().to_string())
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

#[test]
fn every_action_is_a_symlink_to_dispatch_known_to_the_binary() {
    let entries = entries();
    let mut archived = BTreeSet::new();
    for e in entries.iter().filter(|e| e.name.starts_with("actions/")) {
        assert_eq!(e.mode & S_IFMT, S_IFLNK, "{} is stored with mode {:o}, not as a symlink", e.name, e.mode);
        assert_eq!(e.data, b"../dispatch", "{} points at {:?}", e.name, String::from_utf8_lossy(&e.data));
        archived.insert(e.name["actions/".len()..].to_string());
    }
    assert_eq!(archived, declared_actions(), "actions/ in the archive vs actions.yaml");
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_redis-k8s")).arg("--list-hooks").env_clear().output().unwrap();
    let listed: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("actions/"))
        .map(str::to_string)
        .collect();
    assert_eq!(listed, declared_actions(), "actions the binary handles vs actions.yaml");
}

#[test]
fn dispatch_is_an_executable_regular_file() {
    let entries = entries();
    let d = entry(&entries, "dispatch");
    assert_eq!(d.mode, S_IFREG | 0o755, "dispatch mode is {:o}", d.mode);
    assert!(d.data.starts_with(b"\x7fELF"), "dispatch is not an ELF binary");
}

#[test]
fn every_hook_is_a_symlink_to_dispatch_and_matches_the_binary() {
    let entries = entries();
    let mut archived = BTreeSet::new();
    for e in entries.iter().filter(|e| e.name.starts_with("hooks/")) {
        assert_eq!(e.mode & S_IFMT, S_IFLNK, "{} is stored with mode {:o}, not as a symlink (zip -y)", e.name, e.mode);
        assert_eq!(e.data, b"../dispatch", "{} points at {:?}", e.name, String::from_utf8_lossy(&e.data));
        archived.insert(e.name["hooks/".len()..].to_string());
    }
    let listed: BTreeSet<String> = crate::support::listed_hooks().into_iter().collect();
    assert_eq!(archived, listed, "hooks/ in the archive vs the binary's --list-hooks");
    assert_eq!(repo_hooks(), listed, "hooks/ in the repo vs the binary's --list-hooks");
}

#[test]
fn metadata_is_a_podspec_v1_charm_for_juju_2_8_and_later() {
    let entries = entries();
    let meta: serde_yaml::Mapping = serde_yaml::from_slice(&entry(&entries, "metadata.yaml").data).unwrap();
    let get = |k: &str| meta.get(serde_yaml::Value::from(k));
    let series: Vec<String> = serde_yaml::from_value(get("series").expect("series").clone()).unwrap();
    assert_eq!(series, ["kubernetes"], "series makes it a podspec (v1) charm");
    assert_eq!(get("min-juju-version"), Some(&serde_yaml::Value::from("2.8.0")));
    for v2 in ["containers", "assumes", "charm-user", "bases"] {
        assert!(get(v2).is_none(), "{v2} is a v2 key: with series it makes the metadata ambiguous");
    }
}

/// Extracts the archive the way Juju's reader (juju/utils zip) does: parents created as needed, regular
/// files with their mode, symlinks recreated if relative and inside the target, anything else refused.
fn extract_like_juju(to: &Path) {
    for e in entries() {
        let rel = Path::new(&e.name);
        assert!(rel.components().all(|c| matches!(c, Component::Normal(_))), "unsafe entry name {}", e.name);
        let target = to.join(rel);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        match e.mode & S_IFMT {
            S_IFLNK => {
                let link = String::from_utf8(e.data).unwrap();
                assert!(!link.starts_with('/'), "{}: absolute symlink {link}", e.name);
                let mut depth = rel.components().count() as isize - 1;
                for c in Path::new(&link).components() {
                    depth += match c {
                        Component::ParentDir => -1,
                        Component::Normal(_) => 1,
                        _ => 0,
                    };
                    assert!(depth >= 0, "{}: symlink {link} leads out of the charm dir", e.name);
                }
                symlink(&link, &target).unwrap();
            }
            S_IFREG => {
                fs::write(&target, &e.data).unwrap();
                fs::set_permissions(&target, fs::Permissions::from_mode(e.mode & 0o777)).unwrap();
            }
            other => panic!("{}: unexpected file type {other:o}", e.name),
        }
    }
}

#[test]
fn extracted_hooks_resolve_to_the_dispatch_binary() {
    let dir = TempDir::new("extract");
    let root = dir.path().join("charm");
    extract_like_juju(&root);
    let dispatch = fs::canonicalize(root.join("dispatch")).unwrap();
    let bytes = fs::read(&dispatch).unwrap();
    assert_eq!(fs::metadata(&dispatch).unwrap().permissions().mode() & 0o777, 0o755);
    let mut n = 0;
    for e in fs::read_dir(root.join("hooks")).unwrap() {
        let path = e.unwrap().path();
        assert!(fs::symlink_metadata(&path).unwrap().file_type().is_symlink(), "{}", path.display());
        assert_eq!(fs::canonicalize(&path).unwrap(), dispatch, "{}", path.display());
        assert!(fs::read(&path).unwrap() == bytes, "{} does not read as dispatch", path.display());
        n += 1;
    }
    assert!(n >= 2);
}

/// The static-binary checks on an ELF image: no program interpreter, no DT_NEEDED library, no symbol table.
fn check_static_stripped(what: &str, b: &[u8]) {
    let u16_at = |o: usize| u16::from_le_bytes(b[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    assert!(b.starts_with(b"\x7fELF\x02\x01"), "{what}: not a 64-bit little-endian ELF");
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        match u32_at(ph) {
            3 => panic!("{what} has a PT_INTERP: it is dynamically linked"),
            2 => {
                // PT_DYNAMIC: a static-pie keeps one for self-relocation, but must need no library.
                let (off, size) = (u64_at(ph + 8), u64_at(ph + 32));
                for d in (off..off + size).step_by(16) {
                    match u64_at(d) {
                        0 => break,
                        1 => panic!("{what} has a DT_NEEDED entry: it loads a shared library"),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let (shoff, shentsize, shnum) = (u64_at(0x28), u16_at(0x3A), u16_at(0x3C));
    for i in 0..shnum {
        assert_ne!(u32_at(shoff + i * shentsize + 4), 2, "{what} has a .symtab: it is not stripped");
    }
}

#[test]
fn dispatch_is_static_and_stripped() {
    let entries = entries();
    check_static_stripped("dispatch in the .charm", &entry(&entries, "dispatch").data);
}

#[test]
fn the_release_binary_is_static_and_stripped_when_built() {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| Path::new(REPO).join("target"));
    let bin = target.join("x86_64-unknown-linux-gnu/release/redis-k8s");
    match fs::read(&bin) {
        Ok(bytes) => check_static_stripped(&bin.display().to_string(), &bytes),
        Err(_) => eprintln!("{} not built (`make build`); the .charm's dispatch is checked instead", bin.display()),
    }
}

/// charm-tools' linter on the unpacked archive, through scripts/charm-proof.py (which lets it read a binary
/// hook). Exit 0 means infos only.
#[test]
fn charm_proof_passes_on_the_unpacked_archive() {
    let venv = Path::new(REPO).join(".venv-tools/bin");
    let python = if venv.join("charm-proof").is_file() {
        venv.join("python")
    } else if which_on_path("charm-proof") {
        PathBuf::from("python3")
    } else {
        panic!("charm-proof is not installed (neither .venv-tools/bin/charm-proof nor on PATH): run `make setup`");
    };
    let dir = TempDir::new("proof");
    // Named after the charm, so proof has no "name must match directory" info to give.
    let root = dir.path().join("redis-k8s");
    extract_like_juju(&root);
    let out = Command::new(&python)
        .arg(Path::new(REPO).join("scripts/charm-proof.py"))
        .arg(&root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "charm-proof must report infos only (0), got {:?}:\n{text}", out.status);
    assert!(text.lines().all(|l| l.starts_with("I: ")), "{text}");
}

fn which_on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// The check above is not vacuous: the test build of the binary is dynamic and unstripped.
#[test]
fn the_static_check_rejects_a_dynamic_binary() {
    let bytes = fs::read(crate::support::BIN).unwrap();
    let result = std::panic::catch_unwind(|| check_static_stripped("the test binary", &bytes));
    assert!(result.is_err(), "{} passed the static check", crate::support::BIN);
}
