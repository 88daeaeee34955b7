//! The hook tools (reference §3): the juju-local binary invoked under a tool's name through the
//! symlinks in the unit's tools dir (busybox style). A tool finds its hook through
//! `JUJU_CONTEXT_ID` + `JUJU_AGENT_SOCKET_ADDRESS` (the path of the running hook's context file),
//! parses its flags gnuflag-style, and exits 0 (success), 1 (`ERROR <msg>`: runtime error) or 2
//! (`ERROR <msg>`: bad flags or arguments). Immediate changes go straight into model.json (under
//! tools.lock); deferred ones go into the hook context for the runner to commit.

mod action;
mod config;
pub mod flags;
mod leader;
mod log;
mod network;
pub mod output;
mod relation;
mod resource;
mod spec;
mod state;
mod status;

use crate::context::HookContext;
use crate::model::{Model, Paths};
use crate::util::FileLock;
use flags::{Flag, Parsed};
use output::Format;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A tool failure and its exit code.
#[derive(Debug)]
pub enum ToolError {
    /// Bad flags or arguments: exit 2.
    Usage(String),
    /// Runtime error: exit 1.
    Run(String),
}

pub type ToolResult = Result<(), ToolError>;

pub fn run_err(msg: impl Into<String>) -> ToolError {
    ToolError::Run(msg.into())
}

pub fn usage_err(msg: impl Into<String>) -> ToolError {
    ToolError::Usage(msg.into())
}

/// `unrecognized args: ["a" "b"]`, as cmd.CheckEmpty says it.
pub fn unrecognized(args: &[String]) -> ToolError {
    let quoted: Vec<String> = args.iter().map(|a| crate::util::go_quote(a)).collect();
    usage_err(format!("unrecognized args: [{}]", quoted.join(" ")))
}

pub struct Tool {
    pub name: &'static str,
    pub flags: &'static [Flag],
    pub usage: &'static str,
    pub run: fn(&mut Ctx, &Parsed) -> ToolResult,
}

pub const FMT: Flag = flags::val("format", None);
pub const OUT: Flag = flags::val("output", Some('o'));
pub const REL: Flag = flags::val("relation", Some('r'));

fn tools() -> Vec<Tool> {
    let mut v = Vec::new();
    v.extend(config::tools());
    v.extend(leader::tools());
    v.extend(status::tools());
    v.extend(log::tools());
    v.extend(spec::tools());
    v.extend(resource::tools());
    v.extend(network::tools());
    v.extend(relation::tools());
    v.extend(state::tools());
    v.extend(action::tools());
    v
}

/// Every tool name juju-local provides (the symlinks in each unit's tools dir).
pub const TOOL_NAMES: &[&str] = &[
    "action-fail",
    "action-get",
    "action-log",
    "action-set",
    "application-version-set",
    "close-port",
    "config-get",
    "is-leader",
    "juju-log",
    "k8s-spec-get",
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
    "unit-get",
];

pub fn is_tool(name: &str) -> bool {
    TOOL_NAMES.contains(&name)
}

/// What a running tool works with.
pub struct Ctx<'a> {
    pub hook: HookContext,
    ctx_file: PathBuf,
    pub paths: Paths,
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    pub stdin: &'a mut dyn Read,
    pub cwd: PathBuf,
}

impl Ctx<'_> {
    pub fn model(&self) -> Result<Model, ToolError> {
        Model::load(&self.paths).map_err(|e| run_err(format!("{e:#}")))
    }

    /// Read-modify-write of the model for immediate changes.
    pub fn with_model<T>(&self, f: impl FnOnce(&mut Model) -> Result<T, ToolError>) -> Result<T, ToolError> {
        let _lock = FileLock::acquire(&self.paths.tools_lock()).map_err(|e| run_err(format!("{e:#}")))?;
        let mut model = self.model()?;
        let r = f(&mut model)?;
        model.save(&self.paths).map_err(|e| run_err(format!("{e:#}")))?;
        Ok(r)
    }

    /// Read-modify-write of the hook context for deferred changes.
    pub fn with_context<T>(
        &mut self,
        f: impl FnOnce(&mut HookContext) -> Result<T, ToolError>,
    ) -> Result<T, ToolError> {
        let _lock = FileLock::acquire(&self.paths.tools_lock()).map_err(|e| run_err(format!("{e:#}")))?;
        let mut ctx = HookContext::load(&self.ctx_file).map_err(|e| run_err(format!("{e:#}")))?;
        let r = f(&mut ctx)?;
        ctx.save(&self.ctx_file).map_err(|e| run_err(format!("{e:#}")))?;
        self.hook = ctx;
        Ok(r)
    }

    pub fn is_leader(&self, model: &Model) -> bool {
        model.apps.get(&self.hook.app).is_some_and(|a| a.leader == Some(self.hook.unit))
    }

    /// Prints `v` in the requested format, to `-o <file>` when given.
    pub fn print(&mut self, p: &Parsed, v: &Value) -> ToolResult {
        let format = Format::parse(p.value("format")).map_err(usage_err)?;
        let text = output::render(format, v);
        match p.value("output") {
            Some(file) => {
                std::fs::write(self.cwd.join(file), text).map_err(|e| run_err(format!("cannot write {file}: {e}")))
            }
            None => self.out.write_all(text.as_bytes()).map_err(|e| run_err(e.to_string())),
        }
    }

    /// Reads a `--file` argument: `-` is stdin, relative paths are against the caller's cwd.
    pub fn read_file_arg(&mut self, path: &str) -> Result<String, ToolError> {
        if path == "-" {
            let mut s = String::new();
            self.stdin.read_to_string(&mut s).map_err(|e| run_err(format!("cannot read stdin: {e}")))?;
            return Ok(s);
        }
        let full = self.cwd.join(path);
        std::fs::read_to_string(&full).map_err(|e| run_err(format!("open {}: {e}", full.display())))
    }

    /// The relation given by `-r` (number after the last `:`), or the hook's own relation.
    pub fn relation_id(&self, p: &Parsed, model: &Model) -> Result<Option<u32>, ToolError> {
        let Some(raw) = p.value("relation") else { return Ok(self.hook.relation_id) };
        let bad = |why: &str| usage_err(format!("invalid value {raw:?} for flag {}: {why}", p.typed("relation")));
        let num = raw.rsplit(':').next().unwrap_or(raw);
        let id: u32 = num.parse().map_err(|_| bad("invalid relation id"))?;
        match model.relations.get(&id) {
            Some(r) if r.involves(&self.hook.app) => Ok(Some(id)),
            _ => Err(bad("relation not found")),
        }
    }
}

/// Entry point when the binary runs as a hook tool.
pub fn main(name: &str, args: &[String]) -> i32 {
    let stdin = std::io::stdin();
    let mut stdin = stdin.lock();
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let code = run_tool(name, args, &|k| std::env::var(k).ok(), &cwd, &mut stdin, &mut out, &mut err);
    let _ = out.flush();
    code
}

/// Runs tool `name` with `args`; returns the exit code. Environment access is injected for tests.
pub fn run_tool(
    name: &str,
    args: &[String],
    getenv: &dyn Fn(&str) -> Option<String>,
    cwd: &Path,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let fail = |err: &mut dyn Write, code: i32, msg: &str| {
        let _ = writeln!(err, "ERROR {msg}");
        code
    };
    let Some(tool) = tools().into_iter().find(|t| t.name == name) else {
        return fail(err, 1, &format!("unknown command {name:?}"));
    };
    let Some(id) = getenv("JUJU_CONTEXT_ID").filter(|s| !s.is_empty()) else {
        return fail(err, 1, "JUJU_CONTEXT_ID not set");
    };
    let Some(addr) = getenv("JUJU_AGENT_SOCKET_ADDRESS").filter(|s| !s.is_empty()) else {
        return fail(err, 1, "JUJU_AGENT_SOCKET_ADDRESS not set");
    };
    let ctx_file = PathBuf::from(&addr);
    let hook = match HookContext::load(&ctx_file) {
        Ok(h) => h,
        Err(_) => return fail(err, 1, &format!("dial unix {addr}: connect: connection refused")),
    };
    if hook.id != id {
        return fail(err, 1, &format!("bad request: expected context id {:?}, got {id:?}", hook.id));
    }
    let parsed = match flags::parse(tool.flags, args) {
        Ok(p) => p,
        Err(e) => return fail(err, 2, &e),
    };
    if parsed.help {
        let _ = writeln!(out, "Usage: {} {}", tool.name, tool.usage);
        return 0;
    }
    if tool.flags.iter().any(|f| f.long == "format")
        && let Err(e) = Format::parse(parsed.value("format"))
    {
        return fail(err, 2, &e);
    }
    let paths = match Paths::new(&hook.model_dir) {
        Ok(p) => p,
        Err(e) => return fail(err, 1, &format!("{e:#}")),
    };
    let mut ctx = Ctx { hook, ctx_file, paths, out, err, stdin, cwd: cwd.to_path_buf() };
    match (tool.run)(&mut ctx, &parsed) {
        Ok(()) => 0,
        Err(ToolError::Usage(m)) => fail(ctx.err, 2, &m),
        Err(ToolError::Run(m)) => fail(ctx.err, 1, &m),
    }
}

/// The settings of relation-set / state-set: the `--file` YAML map (`-` is stdin), then the `key=value`
/// arguments, which override it.
pub fn settings_arg(ctx: &mut Ctx, p: &flags::Parsed) -> Result<std::collections::BTreeMap<String, String>, ToolError> {
    let mut pairs = match p.value("file") {
        Some(f) => {
            let text = ctx.read_file_arg(f)?;
            yaml_string_map(&text)?
        }
        None => std::collections::BTreeMap::new(),
    };
    parse_pairs(&p.args, &mut pairs)?;
    Ok(pairs)
}

/// Parses `key=value` arguments; duplicates and malformed pairs are usage errors.
pub fn parse_pairs(args: &[String], base: &mut std::collections::BTreeMap<String, String>) -> ToolResult {
    let mut seen = std::collections::BTreeSet::new();
    for a in args {
        let (k, v) = crate::util::split_kv(a).map_err(usage_err)?;
        if !seen.insert(k.clone()) {
            return Err(usage_err(format!("key {k:?} specified more than once")));
        }
        base.insert(k, v);
    }
    Ok(())
}

/// A YAML map from a `--file`, with scalar values as strings.
pub fn yaml_string_map(text: &str) -> Result<std::collections::BTreeMap<String, String>, ToolError> {
    let v: Value = serde_yaml::from_str(text).map_err(|e| run_err(format!("cannot parse settings: {e}")))?;
    let mut out = std::collections::BTreeMap::new();
    match v {
        Value::Null => {}
        Value::Object(m) => {
            for (k, v) in m {
                let s = match v {
                    Value::String(s) => s,
                    Value::Null => String::new(),
                    Value::Bool(_) | Value::Number(_) => v.to_string(),
                    other => {
                        return Err(run_err(format!(
                            "cannot parse settings: value for {k:?} is not a string: {other}"
                        )));
                    }
                };
                out.insert(k, s);
            }
        }
        _ => return Err(run_err("cannot parse settings: expected a map")),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let getenv = move |k: &str| env.iter().find(|(ek, _)| ek == k).map(|(_, v)| v.clone());
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_tool(name, &args, &getenv, Path::new("/"), &mut std::io::empty(), &mut out, &mut err);
        (code, String::from_utf8_lossy(&out).into(), String::from_utf8_lossy(&err).into())
    }

    #[test]
    fn missing_context_id_is_refused() {
        let (code, _, err) = run("config-get", &[], &[]);
        assert_eq!((code, err.as_str()), (1, "ERROR JUJU_CONTEXT_ID not set\n"));
    }

    #[test]
    fn wrong_context_id_is_refused() {
        let dir = std::env::temp_dir().join(format!("jl-tooltest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("agent.socket");
        let ctx =
            HookContext { id: "a/0-install-1".into(), model_dir: dir.clone(), app: "a".into(), ..Default::default() };
        ctx.save(&file).unwrap();
        let addr = file.display().to_string();
        let (code, _, err) =
            run("is-leader", &[], &[("JUJU_CONTEXT_ID", "a/0-install-2"), ("JUJU_AGENT_SOCKET_ADDRESS", &addr)]);
        assert_eq!(code, 1);
        assert_eq!(err, "ERROR bad request: expected context id \"a/0-install-1\", got \"a/0-install-2\"\n");
        let (code, _, err) = run(
            "is-leader",
            &["--bogus"],
            &[("JUJU_CONTEXT_ID", "a/0-install-1"), ("JUJU_AGENT_SOCKET_ADDRESS", &addr)],
        );
        assert_eq!((code, err.as_str()), (2, "ERROR flag provided but not defined: --bogus\n"));
        let (code, out, _) = run(
            "is-leader",
            &["--help"],
            &[("JUJU_CONTEXT_ID", "a/0-install-1"), ("JUJU_AGENT_SOCKET_ADDRESS", &addr)],
        );
        assert_eq!(code, 0);
        assert!(out.starts_with("Usage: is-leader"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_tool_name_has_an_implementation() {
        let names: Vec<&str> = tools().iter().map(|t| t.name).collect();
        for n in TOOL_NAMES {
            assert!(names.contains(n), "{n}");
        }
    }
}
