//! The scratch workspace: the fake tools directory, one unit directory per contender, the Juju-like
//! environment of each hook, and running one lifecycle step.
//!
//! Layout under `--work` (wiped and rebuilt each invocation):
//! - `tools/`: `fake-tool` (a copy of `benches/fake-tools/fake-tool`) and a symlink to it per tool name;
//! - `calls/<step>.calls`: (a)'s recorded tool calls per step, replayed by the same-calls floor;
//! - `<key>/unit/charm/`: the contender's charm dir (JUJU_CHARM_DIR and cwd), `<key>/unit/state/` (the
//!   agent's state dir, where redis-k8s keeps its flag store), `<key>/unit/fake-model/` (the peer
//!   application bag the fake tools keep), `<key>/unit/resources/redis-image/`
//!   (the oci-image resource's content.yaml, as resource-get gives it), `<key>/tools.log`, `stdout`,
//!   `stderr`.

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::spawn::run_hook;
use crate::stats::Sample;
use crate::{Options, Step};

/// Every hook tool a contender might call; each is a link to the one fake script.
const TOOLS: &[&str] = &[
    "action-fail",
    "action-get",
    "action-log",
    "action-set",
    "application-version-set",
    "close-port",
    "config-get",
    "goal-state",
    "is-leader",
    "juju-log",
    "juju-reboot",
    "k8s-raw-set",
    "k8s-spec-set",
    "leader-get",
    "leader-set",
    "network-get",
    "open-port",
    "opened-ports",
    "pod-spec-get",
    "pod-spec-set",
    "relation-get",
    "relation-ids",
    "relation-list",
    "relation-set",
    "resource-get",
    "state-delete",
    "state-get",
    "state-set",
    "status-get",
    "status-set",
    "storage-get",
    "storage-list",
];

/// The hooks `charm build` would generate for the reactive charm (standard hooks plus db relation hooks).
const REACTIVE_HOOKS: &[&str] = &[
    "install",
    "config-changed",
    "leader-elected",
    "leader-settings-changed",
    "start",
    "stop",
    "update-status",
    "upgrade-charm",
    "pre-series-upgrade",
    "post-series-upgrade",
    "db-relation-created",
    "db-relation-joined",
    "db-relation-changed",
    "db-relation-departed",
    "db-relation-broken",
];

const CONTENT_YAML: &str = "registrypath: registry.example.com/redis:7.0\nusername: ''\npassword: ''\n";

/// What a contender is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Charm,
    Reactive,
    Ops,
    Exit0,
    SameCalls,
}

/// One contender and where it lives.
#[derive(Debug, Clone)]
pub struct Contender {
    pub key: &'static str,
    pub name: &'static str,
    pub kind: Kind,
    pub python: bool,
    pub root: PathBuf,
    /// Top-level entries of the charm dir after setup: anything else is hook state, removed by reset.
    pub pristine: Vec<String>,
}

impl Contender {
    pub fn unit(&self) -> PathBuf {
        self.root.join("unit")
    }
    pub fn charm_dir(&self) -> PathBuf {
        self.unit().join("charm")
    }
    /// The program Juju would run: `dispatch` if the charm has one, else `hooks/<name>`.
    pub fn program(&self, hook: &str) -> PathBuf {
        match self.kind {
            Kind::Reactive => self.charm_dir().join("hooks").join(hook),
            _ => self.charm_dir().join("dispatch"),
        }
    }
}

/// The result of one hook run.
pub struct StepResult {
    pub sample: Sample,
    /// The fake tools' call log for this hook.
    pub log: String,
}

/// The scratch workspace of one invocation.
pub struct Workspace {
    pub work: PathBuf,
    pub repo: PathBuf,
    list: Vec<Contender>,
}

fn err<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e}")
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == "__pycache__" || name == "README.md" {
            continue;
        }
        let ty = entry.file_type()?;
        let dest = to.join(&name);
        if ty.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else {
            fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

fn write_exec(path: &Path, text: &str) -> io::Result<()> {
    fs::write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

fn copy_exec(from: &Path, to: &Path) -> io::Result<()> {
    fs::copy(from, to)?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o755))
}

impl Workspace {
    /// Wipes `--work` and builds the tools dir and every contender's unit dir.
    pub fn create(o: &Options) -> Result<Workspace, String> {
        let work = o.work.clone();
        if work.exists() {
            fs::remove_dir_all(&work).map_err(err(format!("removing {}", work.display())))?;
        }
        let tools = work.join("tools");
        fs::create_dir_all(&tools).map_err(err("creating the tools dir"))?;
        fs::create_dir_all(work.join("calls")).map_err(err("creating the calls dir"))?;
        copy_exec(&o.repo.join("benches/fake-tools/fake-tool"), &tools.join("fake-tool"))
            .map_err(err("copying the fake tool"))?;
        for t in TOOLS {
            symlink("fake-tool", tools.join(t)).map_err(err(format!("linking {t}")))?;
        }

        let python = o.venv.join("bin/python3");
        if !python.exists() {
            return Err(format!("{} is missing: run benches/run.sh, which creates the venv", python.display()));
        }
        let specs: [(&'static str, &'static str, Kind, bool); 5] = [
            ("a", "redis-k8s (Rust, release)", Kind::Charm, false),
            ("b", "charms.reactive (Python)", Kind::Reactive, true),
            ("c", "ops (Python)", Kind::Ops, true),
            ("d0", "floor: exit 0", Kind::Exit0, false),
            ("d1", "floor: same calls", Kind::SameCalls, false),
        ];
        let mut list = Vec::new();
        for (key, name, kind, is_py) in specs {
            let root = work.join(key);
            let charm = root.join("unit/charm");
            fs::create_dir_all(&charm).map_err(err("creating a charm dir"))?;
            fs::create_dir_all(root.join("unit/state")).map_err(err("creating a state dir"))?;
            fs::create_dir_all(root.join("unit/fake-model")).map_err(err("creating the fake model dir"))?;
            let res = root.join("unit/resources/redis-image");
            fs::create_dir_all(&res).map_err(err("creating a resource dir"))?;
            fs::write(res.join("content.yaml"), CONTENT_YAML).map_err(err("writing content.yaml"))?;
            for f in ["metadata.yaml", "config.yaml"] {
                fs::copy(o.repo.join(f), charm.join(f)).map_err(err(format!("copying {f}")))?;
            }
            let setup = match kind {
                Kind::Charm => fs::copy(o.repo.join("layer.yaml"), charm.join("layer.yaml"))
                    .and_then(|_| copy_exec(&o.charm_bin, &charm.join("dispatch"))),
                Kind::Exit0 => copy_exec(&o.exit0_bin, &charm.join("dispatch")),
                Kind::SameCalls => copy_exec(&o.replay_bin, &charm.join("dispatch")),
                Kind::Reactive => setup_reactive(&o.repo.join("benches/reactive_charm"), &charm, &python),
                Kind::Ops => setup_ops(&o.repo.join("benches/ops_charm"), &charm, &python),
            };
            setup.map_err(err(format!("setting up contender ({key})")))?;
            let mut pristine: Vec<String> = fs::read_dir(&charm)
                .map_err(err("listing a charm dir"))?
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect();
            pristine.sort();
            list.push(Contender { key, name, kind, python: is_py, root, pristine });
        }
        Ok(Workspace { work, repo: o.repo.clone(), list })
    }

    pub fn contenders(&self) -> Vec<Contender> {
        self.list.clone()
    }

    pub fn calls_file(&self, step: usize) -> PathBuf {
        self.work.join("calls").join(format!("{step}.calls"))
    }

    /// Starts a fresh unit: removes whatever hooks left in the charm dir and the agent state dir.
    /// Python bytecode caches (inside the fixture's own directories) stay, as they would on a unit.
    pub fn reset(&self, c: &Contender) -> Result<(), String> {
        let charm = c.charm_dir();
        for entry in fs::read_dir(&charm).map_err(err("listing a charm dir"))? {
            let entry = entry.map_err(err("listing a charm dir"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if c.pristine.binary_search(&name).is_err() {
                let p = entry.path();
                let r = if p.is_dir() { fs::remove_dir_all(&p) } else { fs::remove_file(&p) };
                r.map_err(err(format!("removing {}", p.display())))?;
            }
        }
        for dir in ["state", "fake-model"] {
            let d = c.unit().join(dir);
            fs::remove_dir_all(&d).map_err(err(format!("clearing {}", d.display())))?;
            fs::create_dir_all(&d).map_err(err(format!("re-creating {}", d.display())))?;
        }
        Ok(())
    }

    /// The environment Juju 2.9 gives a hook (juju-podspec-charms.md §1.1), built from scratch, plus
    /// the fake tools' own variables.
    pub fn env(&self, c: &Contender, index: usize, step: &Step) -> Vec<(String, String)> {
        let charm = c.charm_dir().display().to_string();
        let mut v: Vec<(&str, String)> = vec![
            ("CHARM_DIR", charm.clone()),
            ("JUJU_CHARM_DIR", charm),
            ("JUJU_CONTEXT_ID", format!("redis-k8s/0-{}-{}", step.hook, 5577006791947779410u64 + index as u64)),
            ("JUJU_HOOK_NAME", step.hook.to_string()),
            ("JUJU_AGENT_SOCKET_ADDRESS", "@/var/lib/juju/agents/unit-redis-k8s-0/agent.socket".to_string()),
            ("JUJU_AGENT_SOCKET_NETWORK", "unix".to_string()),
            ("JUJU_UNIT_NAME", "redis-k8s/0".to_string()),
            ("JUJU_MODEL_UUID", "7d6c2a5e-0c6f-4b8a-8d3e-5f0c9e1a2b3c".to_string()),
            ("JUJU_MODEL_NAME", "bench".to_string()),
            ("JUJU_API_ADDRESSES", "10.152.183.5:17070".to_string()),
            ("JUJU_SLA", "unsupported".to_string()),
            ("JUJU_MACHINE_ID", String::new()),
            ("JUJU_PRINCIPAL_UNIT", String::new()),
            ("JUJU_AVAILABILITY_ZONE", String::new()),
            ("JUJU_VERSION", "2.9.42".to_string()),
            ("CLOUD_API_VERSION", "1.28.0".to_string()),
            ("APT_LISTCHANGES_FRONTEND", "none".to_string()),
            ("DEBIAN_FRONTEND", "noninteractive".to_string()),
            ("LANG", "C.UTF-8".to_string()),
            ("PATH", format!("{}:/usr/bin:/bin", self.work.join("tools").display())),
            ("TERM", "tmux-256color".to_string()),
            ("JUJU_DISPATCH_PATH", format!("hooks/{}", step.hook)),
            ("FAKE_TOOL_LOG", c.root.join("tools.log").display().to_string()),
            ("FAKE_PORT", step.port.to_string()),
        ];
        if step.relation_hook {
            v.push(("JUJU_RELATION", "db".to_string()));
            v.push(("JUJU_RELATION_ID", "db:1".to_string()));
            v.push(("JUJU_REMOTE_UNIT", "client/0".to_string()));
            v.push(("JUJU_REMOTE_APP", "client".to_string()));
        }
        if step.related {
            v.push(("FAKE_RELATED", "1".to_string()));
        }
        if c.kind == Kind::SameCalls {
            v.push(("HOOKBENCH_CALLS", self.calls_file(index).display().to_string()));
        }
        v.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// Runs one lifecycle step for `c` and checks that the hook succeeded.
    pub fn run_step(&self, c: &Contender, index: usize, step: &Step) -> Result<StepResult, String> {
        let log = c.root.join("tools.log");
        fs::write(&log, "").map_err(err("truncating the call log"))?;
        let env = self.env(c, index, step);
        let (out, errf) = (c.root.join("stdout"), c.root.join("stderr"));
        let r = run_hook(&c.program(step.hook), &c.charm_dir(), &env, &out, &errf)
            .map_err(err(format!("running ({}) {}", c.key, step.label)))?;
        let text = fs::read_to_string(&log).map_err(err("reading the call log"))?;
        if r.code != Some(0) {
            let stderr = fs::read_to_string(&errf).unwrap_or_default();
            let tail: Vec<&str> = stderr.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "({}) {} failed ({:?}); tool calls:\n{}stderr (end):\n{}",
                c.key,
                step.label,
                r.code,
                text,
                tail.join("\n")
            ));
        }
        let calls = text.matches('\u{1e}').count() as u32;
        Ok(StepResult {
            sample: Sample { wall_us: r.wall_us, cpu_us: r.cpu_us, rss_kb: r.max_rss_kb, calls },
            log: text,
        })
    }
}

/// The charms.reactive charm dir: the fixture, one hook file per hook from the template.
fn setup_reactive(fixture: &Path, charm: &Path, python: &Path) -> io::Result<()> {
    copy_tree(fixture, charm)?;
    let template = fs::read_to_string(fixture.join("hooks/hook.template"))?;
    let body = template.split_once('\n').map(|(_, rest)| rest).unwrap_or(&template);
    let script = format!("#!{}\n{body}", python.display());
    for h in REACTIVE_HOOKS {
        write_exec(&charm.join("hooks").join(h), &script)?;
    }
    fs::remove_file(charm.join("hooks/hook.template"))
}

/// The ops charm dir: the fixture with the venv's python in `dispatch`.
fn setup_ops(fixture: &Path, charm: &Path, python: &Path) -> io::Result<()> {
    copy_tree(fixture, charm)?;
    let dispatch = fs::read_to_string(fixture.join("dispatch"))?;
    write_exec(&charm.join("dispatch"), &dispatch.replace("@PYTHON@", &python.display().to_string()))
}
