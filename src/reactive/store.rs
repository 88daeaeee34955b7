//! The flag store: the unit's flags and kv data in one JSON file, committed only when a hook succeeds.
//!
//! Where (the charm names the file, its mirror and the override, [`StoreNames`]): the directory the override
//! variable names if set (tests), else the unit agent's `state/` directory beside the charm dir
//! (`$JUJU_CHARM_DIR/../state/`) when it exists, else `$JUJU_CHARM_DIR/.unit-state/`. The file is
//! human-readable, mode 0600, schema-versioned. It is loaded once at hook start; a missing file starts
//! empty, but a corrupt one or one from a newer schema fails the hook (never a silent reset of flags).
//!
//! Commit is atomic: write a temporary file in the same directory, fsync, rename over the store, fsync
//! the directory. A hook that fails never reaches commit, so the previous file stays byte-for-byte.
//!
//! Juju 2.8+ gives podspec charms no persistent operator disk (reference §1.5), so the committed bytes
//! are also mirrored into Juju's charm state (`state-set`, one key, only when they changed; deferred by
//! Juju until the hook succeeds) and restored from `state-get` when the local file is missing.
//!
//! One window remains between the local rename and Juju's commit: a hook killed there leaves the local
//! file one hook ahead of Juju, whose deferred changes (the spec, relation data, the mirror) were thrown
//! away. Juju then retries that very hook. So every write also records which hook wrote the store (name,
//! relation, remote unit); when the same hook runs next, the store is compared with the mirror, which
//! only a committed hook changes, and the mirror wins. Other hooks trust the file, so the check costs a
//! `state-get` only in repeated hooks.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::juju::{HookEnv, HookTools, LogLevel, Settings};

/// The schema this build writes and the newest it reads.
pub const SCHEMA: u32 = 1;
/// What the charm names its store by, and where a test may kill the process: the engine knows none of these,
/// the charm hands them over (`charm::STORE`).
#[derive(Debug, Clone, Copy)]
pub struct StoreNames {
    /// The store's file name inside the state directory.
    pub file: &'static str,
    /// The file naming the hook that last wrote the store.
    pub writer_file: &'static str,
    /// The `state-set` key of the mirror.
    pub mirror_key: &'static str,
    /// Environment variable overriding the state directory.
    pub dir_env: &'static str,
    /// Called at `store-before-rename` and `store-after-rename`, for the crash-safety tests.
    pub crash_point: fn(&str),
}
/// Juju's per-value limit for `state-set` (reference §1.7).
const MIRROR_LIMIT: usize = 65536;

/// What persists between hooks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UnitState {
    pub flags: BTreeMap<String, Value>,
    pub kv: BTreeMap<String, Value>,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    schema: u32,
    #[serde(default)]
    flags: BTreeMap<String, Value>,
    #[serde(default)]
    kv: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct SchemaOnly {
    schema: Option<Value>,
}

/// Where the state came from at hook start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    File,
    Mirror,
    Empty,
}

/// A loaded store: the state and the exact bytes it was read from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub state: UnitState,
    pub source: Source,
    bytes: Option<Vec<u8>>,
}

/// The store of one unit.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    names: StoreNames,
}

impl Store {
    /// The store for the unit of `env` (see the module doc for the rules).
    pub fn locate(env: &HookEnv, names: StoreNames) -> Store {
        if let Some(dir) = std::env::var_os(names.dir_env).filter(|d| !d.is_empty()) {
            return Store { dir: PathBuf::from(dir), names };
        }
        let agent_state = env.charm_dir.join("..").join("state");
        let dir = if agent_state.is_dir() { agent_state } else { env.charm_dir.join(".unit-state") };
        Store { dir, names }
    }

    /// A store in `dir`.
    pub fn at(dir: impl Into<PathBuf>, names: StoreNames) -> Store {
        Store { dir: dir.into(), names }
    }

    /// The store file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(self.names.file)
    }

    /// Loads the local file, else the `state-get` mirror, else an empty state. In `install` (a unit's
    /// first hook, run once in its life) there is no mirror to restore, so `state-get` is not asked.
    /// `identity` names this hook run (see [`hook_identity`]); when it is the one that wrote the file last,
    /// the file is checked against the mirror (see the module doc).
    pub fn load(&self, tools: &mut HookTools, hook: &str, identity: &str) -> Result<Loaded> {
        let path = self.path();
        match fs::read(&path) {
            Ok(bytes) => {
                let state = decode(&bytes).with_context(|| format!("flag store {}", path.display()))?;
                let writer = fs::read_to_string(self.dir.join(self.names.writer_file)).unwrap_or_default();
                if writer == identity
                    && let Some(text) =
                        tools.state_get(self.names.mirror_key).context("checking the flag store against state-get")?
                    && text.as_bytes() != bytes.as_slice()
                {
                    // The last run of this hook wrote the file but Juju did not commit it: start from Juju's.
                    let state = decode(text.as_bytes()).context("flag store mirror in Juju's charm state")?;
                    return Ok(Loaded { state, source: Source::Mirror, bytes: Some(text.into_bytes()) });
                }
                Ok(Loaded { state, source: Source::File, bytes: Some(bytes) })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && hook == "install" => {
                Ok(Loaded { state: UnitState::default(), source: Source::Empty, bytes: None })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mirror =
                    tools.state_get(self.names.mirror_key).context("restoring the flag store from state-get")?;
                match mirror {
                    Some(text) => {
                        let state = decode(text.as_bytes()).context("flag store mirror in Juju's charm state")?;
                        Ok(Loaded { state, source: Source::Mirror, bytes: Some(text.into_bytes()) })
                    }
                    None => Ok(Loaded { state: UnitState::default(), source: Source::Empty, bytes: None }),
                }
            }
            // Only a missing file means "no store yet": one that exists but cannot be read (a directory in its
            // place, EACCES, EIO) must fail the hook, or it would run from empty flags and overwrite the real ones.
            Err(e) => Err(e).with_context(|| {
                format!("flag store {} cannot be read; refusing to start from empty flags", path.display())
            }),
        }
    }

    /// The unit's state as Juju's charm state holds it (the mirror), for a process that has no local store: an
    /// action in the workload pod. Empty when there is none.
    pub fn load_mirror(&self, tools: &mut HookTools) -> Result<UnitState> {
        match tools.state_get(self.names.mirror_key).context("reading the flag store from state-get")? {
            Some(text) => decode(text.as_bytes()).context("flag store mirror in Juju's charm state"),
            None => Ok(UnitState::default()),
        }
    }

    /// Commits `state` at the end of a successful hook: mirrors it with `state-set` and writes the
    /// file atomically, each only when the bytes changed. Call it last: after it, the hook must exit 0.
    pub fn commit(&self, loaded: &Loaded, state: &UnitState, tools: &mut HookTools, identity: &str) -> Result<()> {
        let bytes = encode(state);
        if loaded.bytes.as_deref() == Some(bytes.as_slice()) {
            if loaded.source == Source::Mirror {
                self.write(&bytes, identity)?;
            }
            return Ok(());
        }
        if bytes.len() <= MIRROR_LIMIT {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let mut values = Settings::new();
            values.insert(self.names.mirror_key.to_string(), text);
            tools.state_set(&values).context("mirroring the flag store with state-set")?;
        } else {
            let msg = format!(
                "flag store is {} bytes, over Juju's {MIRROR_LIMIT}-byte state value limit: not mirrored; \
                 it will not survive an operator pod restart",
                bytes.len()
            );
            tools.log(LogLevel::Warning, &msg).context("logging the unmirrored flag store")?;
            // An older mirror must not win over this file in the retry check.
            tools.state_delete(self.names.mirror_key).context("dropping the outgrown flag store mirror")?;
        }
        self.write(&bytes, identity)
    }

    fn write(&self, bytes: &[u8], identity: &str) -> Result<()> {
        let path = self.path();
        let ctx = || format!("writing flag store {}", path.display());
        if !self.dir.is_dir() {
            fs::create_dir_all(&self.dir).with_context(ctx)?;
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700)).with_context(ctx)?;
        }
        let tmp = self.dir.join(format!(".{}.tmp-{}", self.names.file, std::process::id()));
        let result = (|| -> Result<()> {
            let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            // The mode passed to open() is masked by the umask and ignored for an existing file.
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
            f.write_all(bytes)?;
            f.sync_all()?;
            drop(f);
            write_small(&self.dir, self.names.writer_file, identity.as_bytes())?;
            (self.names.crash_point)("store-before-rename");
            fs::rename(&tmp, &path)?;
            (self.names.crash_point)("store-after-rename");
            fs::File::open(&self.dir)?.sync_all()?;
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.with_context(ctx)
    }
}

/// Writes a small file atomically (temp file, rename), mode 0600.
fn write_small(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp-{}", std::process::id()));
    let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(name))
}

/// What identifies one hook run across Juju's retries of it: the hook, and the relation and remote unit
/// it is about. A retry of a failed hook has the same identity; the next different hook does not.
pub fn hook_identity(hook: &str, env: &HookEnv) -> String {
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    format!("{hook}|{}|{}|{}", opt(&env.relation_id), opt(&env.remote_unit), opt(&env.departing_unit))
}

/// The store's file format: pretty JSON with sorted keys.
pub fn encode(state: &UnitState) -> Vec<u8> {
    let disk = OnDisk { schema: SCHEMA, flags: state.flags.clone(), kv: state.kv.clone() };
    let mut out = serde_json::to_vec_pretty(&disk).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Reads the store's file format, refusing what it cannot read faithfully.
pub fn decode(bytes: &[u8]) -> Result<UnitState> {
    let text = std::str::from_utf8(bytes).map_err(|_| anyhow::anyhow!("is corrupt (not UTF-8)"))?;
    let head: SchemaOnly = serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("is corrupt ({e}); refusing to start from empty flags"))?;
    match head.schema.as_ref().and_then(Value::as_u64) {
        None => bail!("is corrupt (no numeric \"schema\" key); refusing to start from empty flags"),
        Some(n) if n > u64::from(SCHEMA) => {
            bail!("has schema {n}, newer than this charm reads ({SCHEMA}); was the charm downgraded?")
        }
        Some(_) => {}
    }
    let disk: OnDisk = serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("is corrupt ({e}); refusing to start from empty flags"))?;
    Ok(UnitState { flags: disk.flags, kv: disk.kv })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::charm::STORE;
    const FILE_NAME: &str = STORE.file;
    const MIRROR_KEY: &str = STORE.mirror_key;
    const STATE_DIR_ENV: &str = STORE.dir_env;
    use crate::juju::fake::{FakeJuju, FakeModel};

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("redis-k8s-store-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn tools(model: FakeModel) -> (HookTools, FakeJuju) {
        let fake = FakeJuju::new(model);
        (HookTools::new(Box::new(fake.clone())), fake)
    }

    #[test]
    fn roundtrip_mode_and_no_rewrite_when_unchanged() {
        let dir = tmpdir("rt");
        let store = Store::at(&dir, STORE);
        let (mut t, fake) = tools(FakeModel::new("r/0"));
        let loaded = store.load(&mut t, "config-changed", "config-changed|||").unwrap();
        assert_eq!(loaded.source, Source::Empty);
        let mut st = UnitState::default();
        st.flags.insert("a".into(), Value::Null);
        store.commit(&loaded, &st, &mut t, "config-changed|||").unwrap();
        let meta = fs::metadata(store.path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(fake.model.borrow().count("state-set"), 1);

        let loaded = store.load(&mut t, "config-changed", "config-changed|||").unwrap();
        assert_eq!(loaded.state, st);
        store.commit(&loaded, &st, &mut t, "config-changed|||").unwrap();
        assert_eq!(fake.model.borrow().count("state-set"), 1, "unchanged state is not mirrored again");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_file_restores_from_the_mirror() {
        let dir = tmpdir("mirror");
        let mut st = UnitState::default();
        st.flags.insert("restored".into(), Value::Null);
        let mut model = FakeModel::new("r/0");
        model.state.insert(MIRROR_KEY.into(), String::from_utf8(encode(&st)).unwrap());
        let (mut t, fake) = tools(model);
        let store = Store::at(&dir, STORE);
        let loaded = store.load(&mut t, "config-changed", "config-changed|||").unwrap();
        assert_eq!(loaded.source, Source::Mirror);
        assert_eq!(loaded.state, st);
        store.commit(&loaded, &st, &mut t, "config-changed|||").unwrap();
        assert!(store.path().exists(), "the local file is rewritten from the mirror");
        assert_eq!(fake.model.borrow().count("state-set"), 0);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_retried_hook_prefers_the_mirror_over_a_file_juju_never_committed() {
        let dir = tmpdir("retry");
        let store = Store::at(&dir, STORE);
        let mut committed = UnitState::default();
        committed.flags.insert("old".into(), Value::Null);
        let mut model = FakeModel::new("r/0");
        model.state.insert(MIRROR_KEY.into(), String::from_utf8(encode(&committed)).unwrap());
        let (mut t, fake) = tools(model);
        // The hook wrote its file, then was killed before Juju committed: the mirror still has `old`.
        let mut ahead = UnitState::default();
        ahead.flags.insert("ahead".into(), Value::Null);
        store.write(&encode(&ahead), "db-relation-joined|db:1|client/0|").unwrap();
        // Juju retries the same hook: Juju's committed state wins.
        let l = store.load(&mut t, "db-relation-joined", "db-relation-joined|db:1|client/0|").unwrap();
        assert_eq!((l.source, l.state.clone()), (Source::Mirror, committed.clone()));
        // A different hook trusts the file without asking.
        let before = fake.model.borrow().count("state-get");
        let l = store.load(&mut t, "update-status", "update-status|||").unwrap();
        assert_eq!((l.source, l.state), (Source::File, ahead));
        assert_eq!(fake.model.borrow().count("state-get"), before);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn install_starts_empty_without_asking_state_get() {
        let dir = tmpdir("install");
        let (mut t, fake) = tools(FakeModel::new("r/0"));
        let loaded = Store::at(&dir, STORE).load(&mut t, "install", "install|||").unwrap();
        assert_eq!(loaded.source, Source::Empty);
        assert_eq!(fake.model.borrow().count("state-get"), 0);
        Store::at(&dir, STORE).load(&mut t, "config-changed", "x").unwrap();
        assert_eq!(fake.model.borrow().count("state-get"), 1);
    }

    #[test]
    fn corrupt_and_newer_stores_are_refused_with_a_clear_error() {
        for (bytes, needle) in [
            (&b"{not json"[..], "is corrupt"),
            (&b"{\"flags\":{}}"[..], "no numeric \"schema\""),
            (&b"{\"schema\":99,\"flags\":{}}"[..], "schema 99, newer"),
            (&[0xff, 0x00][..], "not UTF-8"),
            (&b"{\"schema\":1,\"flags\":[1,2]}"[..], "is corrupt"),
        ] {
            let err = decode(bytes).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
        let dir = tmpdir("corrupt");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(FILE_NAME), b"garbage").unwrap();
        let (mut t, _) = tools(FakeModel::new("r/0"));
        let err = format!("{:#}", Store::at(&dir, STORE).load(&mut t, "config-changed", "x").unwrap_err());
        assert!(err.starts_with("flag store ") && err.contains("is corrupt"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn locate_prefers_the_agent_state_dir() {
        let root = tmpdir("locate");
        fs::create_dir_all(root.join("charm")).unwrap();
        let env = HookEnv { charm_dir: root.join("charm"), ..Default::default() };
        if std::env::var_os(STATE_DIR_ENV).is_none() {
            assert_eq!(Store::locate(&env, STORE).dir, root.join("charm").join(".unit-state"));
            fs::create_dir_all(root.join("state")).unwrap();
            assert_eq!(Store::locate(&env, STORE).dir, root.join("charm").join("..").join("state"));
        }
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn an_unreadable_store_fails_the_hook_and_is_never_taken_for_a_missing_one() {
        // A directory where the file should be: it exists, but reading it fails (EISDIR), as EACCES or EIO would.
        let dir = tmpdir("unreadable");
        fs::create_dir_all(dir.join(FILE_NAME)).unwrap();
        let mut st = UnitState::default();
        st.flags.insert("from-the-mirror".into(), Value::Null);
        let mut model = FakeModel::new("r/0");
        model.state.insert(MIRROR_KEY.into(), String::from_utf8(encode(&st)).unwrap());
        let (mut t, fake) = tools(model);
        for hook in ["install", "config-changed"] {
            let err = Store::at(&dir, STORE).load(&mut t, hook, "x").unwrap_err();
            let msg = format!("{err:#}");
            assert!(msg.starts_with("flag store ") && msg.contains("cannot be read"), "{hook}: {msg}");
            assert!(!msg.contains('\n'), "{hook}: {msg}");
        }
        assert_eq!(fake.model.borrow().count("state-get"), 0, "neither the mirror nor empty flags stand in for it");
        assert!(dir.join(FILE_NAME).is_dir());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Run by [`locate_honours_the_state_dir_override`] in a child process with the variable set, since the
    /// environment is shared by every test thread of this one.
    #[test]
    fn locate_override_child() {
        let Some(want) = std::env::var_os("REDIS_K8S_TEST_LOCATE_WANT") else { return };
        let env = HookEnv { charm_dir: PathBuf::from("/nonexistent/charm"), ..Default::default() };
        let got = Store::locate(&env, STORE).dir;
        let want = if want.is_empty() { PathBuf::from("/nonexistent/charm/.unit-state") } else { PathBuf::from(want) };
        assert_eq!(got, want);
    }

    #[test]
    fn locate_honours_the_state_dir_override() {
        if std::env::var_os("REDIS_K8S_TEST_LOCATE_WANT").is_some() {
            return;
        }
        // The override wins over the charm dir; an empty one counts as unset.
        for (value, want) in [("/tmp/elsewhere/state", "/tmp/elsewhere/state"), ("", "")] {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "reactive::store::tests::locate_override_child", "--test-threads=1"])
                .env(STATE_DIR_ENV, value)
                .env("REDIS_K8S_TEST_LOCATE_WANT", want)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{STATE_DIR_ENV}={value:?}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(stdout.contains("1 passed"), "the child test did not run: {stdout}");
        }
    }

    #[test]
    fn schema_1_fixture_still_loads() {
        // A store written by schema 1. When the schema changes, this must keep loading (migrate it).
        let fixture = include_bytes!("../../tests/fixtures/store-schema-1.json");
        let st = decode(fixture).unwrap();
        assert!(st.flags.contains_key("layer.docker-resource.redis-image.available"));
        assert!(st.kv.contains_key("reactive.data_changed.redis.pod-spec"));
    }
}
