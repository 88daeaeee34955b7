//! Test support: run the real charm binary as Juju would, against fake hook tools on `PATH`.
//!
//! A [`Harness`] owns a unique temp dir holding:
//! - `charm/`: metadata.yaml, config.yaml, layer.yaml from the repo, `dispatch` (a symlink to the built
//!   binary) and `hooks/<name>` symlinks to `../dispatch`, as in the packed charm;
//! - `tools/`: one POSIX `sh` script per hook tool in `src/juju/hook_tools.rs` ([`FAKE_TOOLS`]), answering as the
//!   reference contract says (`--format json` everywhere, `resource-get` with no trailing newline);
//! - `override/`: first on `PATH`, so a test replaces any tool's behaviour by writing a script there
//!   ([`Harness::override_tool`]); [`Harness::remove_tool`] takes a tool off `PATH` altogether;
//! - `calls.log`: every fake appends `CALL <tool> <args…>` and, when it was given stdin, the input as
//!   `  | <line>` lines;
//! - `resources/redis-image/content.yaml`: what `resource-get redis-image` points at.
//!
//! Hooks run with the environment cleared and rebuilt as Juju builds it (no HOME, no USER), cwd = charm dir,
//! stdin = /dev/null.
//!
//! Beside it: [`fake_unit`] drives the shared lifecycle in-process through the recording fake, and [`sim`]
//! runs the same lifecycle through the real binary against stateful fake tools (faults and SIGKILL at any
//! call); [`parallel`] spreads independent cases over a few threads.

#![allow(dead_code)]

pub mod day2;
pub mod fake_unit;
pub mod load;
pub mod local;
pub mod sim;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The built charm binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_redis-k8s");

/// The repository root.
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Every hook tool the charm may call, with the body of its fake (after the shared logging preamble).
/// `$@` are the tool's arguments; `$input` is what it read from stdin.
pub const FAKE_TOOLS: &[(&str, &str)] = &[
    ("config-get", r#"printf '%s\n' '{"port":6379}'"#),
    ("is-leader", "printf '%s\\n' true"),
    // leader-get/state-get: the whole map with no key, "" (json) for a missing key.
    ("leader-get", r#"case "$*" in *--\ *) printf '%s\n' '""' ;; *) printf '%s\n' '{}' ;; esac"#),
    ("leader-set", ":"),
    ("resource-get", RESOURCE_GET),
    ("status-set", ":"),
    ("status-get", r#"printf '%s\n' '{"message":"","status":"maintenance","status-data":{}}'"#),
    ("juju-log", ":"),
    ("application-version-set", ":"),
    ("pod-spec-set", ":"),
    ("k8s-spec-set", ":"),
    ("network-get", r#"printf '%s\n' '"10.1.1.1"'"#),
    ("relation-ids", r#"printf '%s\n' '[]'"#),
    ("relation-list", r#"printf '%s\n' '[]'"#),
    ("relation-get", r#"printf '%s\n' '{}'"#),
    ("relation-set", ":"),
    ("state-get", r#"case "$*" in *--\ *) printf '%s\n' '""' ;; *) printf '%s\n' '{}' ;; esac"#),
    ("state-set", ":"),
    ("state-delete", ":"),
    ("action-get", r#"printf '%s\n' '{}'"#),
    ("action-set", ":"),
    ("action-fail", ":"),
];

/// `resource-get <name>`: the content.yaml path for redis-image, printed with no trailing newline.
const RESOURCE_GET: &str = r#"for last in "$@"; do :; done
if [ "$last" = redis-image ]; then printf '%s' "@RESOURCE@"; exit 0; fi
echo "ERROR could not download resource: resource \"$last\" not found" >&2; exit 1"#;

/// Tools whose stdout the charm parses as JSON (the malformed-JSON fault applies to these).
pub const JSON_TOOLS: &[&str] = &[
    "config-get",
    "is-leader",
    "network-get",
    "relation-ids",
    "relation-list",
    "relation-get",
    "state-get",
    "leader-get",
    "status-get",
    "action-get",
];

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("redis-k8s-test-{}-{n}-{label}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The hook names the binary answers to, from `--list-hooks` (actions left out).
pub fn listed_hooks() -> Vec<String> {
    let out = Command::new(BIN).arg("--list-hooks").env_clear().output().unwrap();
    assert!(out.status.success(), "--list-hooks failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("actions/"))
        .map(str::to_string)
        .collect()
}

/// One recorded hook-tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub tool: String,
    pub args: Vec<String>,
    pub stdin: String,
}

/// What a hook run gave back.
#[derive(Debug)]
pub struct HookRun {
    pub hook: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub calls: Vec<Call>,
}

impl HookRun {
    /// Distinct tool names, in the order first called.
    pub fn tools(&self) -> Vec<String> {
        let mut seen: Vec<String> = Vec::new();
        for c in &self.calls {
            if !seen.contains(&c.tool) {
                seen.push(c.tool.clone());
            }
        }
        seen
    }

    /// Everything about the run, for assertion messages.
    pub fn describe(&self) -> String {
        let calls: Vec<String> = self.calls.iter().map(|c| format!("{} {}", c.tool, c.args.join(" "))).collect();
        format!(
            "hook {} exited {:?}\n--- stderr ---\n{}--- stdout ---\n{}--- calls ---\n{}",
            self.hook,
            self.code,
            self.stderr,
            self.stdout,
            calls.join("\n")
        )
    }
}

/// A charm dir, fake tools and a call log in one temp dir.
pub struct Harness {
    pub dir: TempDir,
    pub charm: PathBuf,
    pub tools: PathBuf,
    pub overrides: PathBuf,
    pub log: PathBuf,
    pub resource: PathBuf,
    /// Extra environment for the hook (e.g. REDIS_K8S_TOOL_TIMEOUT).
    pub extra_env: Vec<(String, String)>,
}

impl Harness {
    pub fn new(label: &str) -> Harness {
        let dir = TempDir::new(label);
        let root = dir.path().to_path_buf();
        let charm = root.join("charm");
        let tools = root.join("tools");
        let overrides = root.join("override");
        let log = root.join("calls.log");
        let resource = root.join("resources/redis-image/content.yaml");
        for d in [&charm.join("hooks"), &tools, &overrides, &resource.parent().unwrap().to_path_buf()] {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(&resource, "registrypath: redis:7.0\nusername: \"\"\npassword: \"\"\n").unwrap();
        fs::write(&log, "").unwrap();

        for f in ["metadata.yaml", "config.yaml", "layer.yaml"] {
            fs::copy(Path::new(REPO).join(f), charm.join(f)).unwrap();
        }
        symlink(BIN, charm.join("dispatch")).unwrap();
        for hook in listed_hooks() {
            symlink("../dispatch", charm.join("hooks").join(hook)).unwrap();
        }

        let h = Harness { dir, charm, tools, overrides, log, resource, extra_env: Vec::new() };
        for (tool, body) in FAKE_TOOLS {
            let body = body.replace("@RESOURCE@", &h.resource.to_string_lossy());
            write_script(&h.tools.join(tool), &h.script(tool, &body));
        }
        h
    }

    /// A fake tool: log the call (and stdin), then run `body`.
    fn script(&self, tool: &str, body: &str) -> String {
        format!(
            "#!/bin/sh\n\
             # fake hook tool {tool}\n\
             input=$(cat)\n\
             {{ printf 'CALL %s' '{tool}'; for a in \"$@\"; do printf ' %s' \"$a\"; done; printf '\\n'\n\
             \x20 if [ -n \"$input\" ]; then printf '%s\\n' \"$input\" | sed 's/^/  | /'; fi; }} >> '{log}'\n\
             {body}\n",
            log = self.log.display()
        )
    }

    /// Replaces `tool`'s behaviour for this harness: `body` runs after the call is logged.
    pub fn override_tool(&self, tool: &str, body: &str) {
        write_script(&self.overrides.join(tool), &self.script(tool, body));
    }

    /// Replaces `tool` with a script that does not log its call (for tools that must not even read stdin).
    pub fn override_tool_raw(&self, tool: &str, script: &str) {
        write_script(&self.overrides.join(tool), script);
    }

    /// Takes `tool` off PATH.
    pub fn remove_tool(&self, tool: &str) {
        let _ = fs::remove_file(self.tools.join(tool));
        let _ = fs::remove_file(self.overrides.join(tool));
    }

    /// The environment Juju gives a hook (reference §1.1), plus [`Harness::extra_env`].
    pub fn hook_env(&self, hook: &str) -> Vec<(String, String)> {
        let charm = self.charm.to_string_lossy().into_owned();
        let path = format!("{}:{}:/usr/bin:/bin", self.overrides.display(), self.tools.display());
        let mut env: Vec<(String, String)> = [
            ("JUJU_UNIT_NAME", "redis-k8s/0".to_string()),
            ("JUJU_CHARM_DIR", charm.clone()),
            ("CHARM_DIR", charm),
            ("JUJU_CONTEXT_ID", format!("redis-k8s/0-{hook}-5577006791947779410")),
            ("JUJU_HOOK_NAME", hook.to_string()),
            ("JUJU_MODEL_NAME", "test".to_string()),
            ("JUJU_MODEL_UUID", "deadbeef-0000-4000-8000-000000000000".to_string()),
            ("JUJU_VERSION", "2.9.31".to_string()),
            ("JUJU_MACHINE_ID", String::new()),
            ("LANG", "C.UTF-8".to_string()),
            ("PATH", path),
            // No cluster here: pod names must be "not found" (pods not running), whatever this machine's DNS says.
            (redis_k8s::redis::resolve::RESOLV_CONF_ENV, "/dev/null".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        env.extend(self.extra_env.iter().cloned());
        env
    }

    /// Runs `hook` the way Juju 2.8+ does: `<charm>/dispatch` with `JUJU_DISPATCH_PATH=hooks/<hook>`.
    pub fn dispatch(&self, hook: &str) -> HookRun {
        let mut env = self.hook_env(hook);
        env.push(("JUJU_DISPATCH_PATH".into(), format!("hooks/{hook}")));
        self.run(hook, &self.charm.join("dispatch"), env)
    }

    /// Runs `hook` through its `hooks/<hook>` symlink, with no JUJU_DISPATCH_PATH (pre-2.8, or by hand).
    pub fn hook_symlink(&self, hook: &str) -> HookRun {
        let env = self.hook_env(hook);
        self.run(hook, &self.charm.join("hooks").join(hook), env)
    }

    /// Runs `program` with exactly `env`, in the charm dir, stdin from /dev/null.
    pub fn run(&self, hook: &str, program: &Path, env: Vec<(String, String)>) -> HookRun {
        fs::write(&self.log, "").unwrap();
        let out: Output = Command::new(program)
            .env_clear()
            .envs(env)
            .current_dir(&self.charm)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        HookRun {
            hook: hook.to_string(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            calls: parse_log(&fs::read_to_string(&self.log).unwrap_or_default()),
        }
    }
}

/// Writes an executable script.
pub fn write_script(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Parses the call log.
pub fn parse_log(text: &str) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("CALL ") {
            let mut words = rest.split(' ').map(str::to_string);
            let tool = words.next().unwrap_or_default();
            calls.push(Call { tool, args: words.collect(), stdin: String::new() });
        } else if let Some(data) = line.strip_prefix("  | ")
            && let Some(last) = calls.last_mut()
        {
            last.stdin.push_str(data);
            last.stdin.push('\n');
        }
    }
    calls
}

/// Maps `f` over `items` on a few threads (cases here wait on fsync and child processes, not the CPU), in
/// order. A panic in `f` is re-raised.
pub fn parallel<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let mut out: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(item)));
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}
