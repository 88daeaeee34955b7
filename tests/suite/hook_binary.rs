//! The real charm binary run as a hook, against fake hook tools (see `support`).
//!
//! Nothing here names the tools a hook calls or their order: that is the charm's business and changes with
//! it. The fault matrix is generated from the calls a clean run records, so a new call site is covered as soon
//! as it exists: for every tool a hook calls, that tool failing (exit 1, exit 2), missing from PATH, printing
//! output that breaks its contract, or hanging must fail the hook with exactly one stderr line naming the tool;
//! except `resource-get` exiting 1 or hanging, a download that failed, which blocks the unit with the tool's
//! error and lets the hook succeed (layer:docker-resource's contract).
//!
//! A hostile environment and command line are covered too: unrelated variables holding any bytes are ignored,
//! while a variable the charm needs that is not UTF-8, a tool time limit out of range, no hook named, or a
//! 120 KB program name or dispatch path each fail on one bounded line that says what is wrong, with no panic.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::support::{BIN, FAKE_TOOLS, Harness, HookRun, JSON_TOOLS, TempDir};

/// The hooks the fault matrix starts from: the two every deployment runs first and that do the most.
const MATRIX_HOOKS: &[&str] = &["install", "config-changed"];

/// Text that must never reach a hook's output: a panic is a bug, whatever the tool did.
const PANIC_TEXT: &[&str] = &["panicked", "RUST_BACKTRACE", "internal error", "stack backtrace"];

fn assert_ran(run: &HookRun) {
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert!(!run.calls.is_empty(), "the hook called no tool at all:\n{}", run.describe());
    let prefix = format!("redis-k8s: {}: ", run.hook);
    let summary = run.stdout.lines().find(|l| l.starts_with(&prefix) && l.contains(" hook tool calls: "));
    let summary = summary.unwrap_or_else(|| panic!("no summary line for {}:\n{}", run.hook, run.describe()));
    let n: usize = summary[prefix.len()..].split(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1, "{summary}");
    assert_eq!(n, run.calls.len(), "the summary's count and the fakes' log disagree:\n{}", run.describe());
    assert!(run.stderr.is_empty(), "a clean run wrote to stderr:\n{}", run.describe());
    assert_no_panic(run);
}

fn assert_no_panic(run: &HookRun) {
    for t in PANIC_TEXT {
        assert!(!run.stderr.contains(t) && !run.stdout.contains(t), "panic text {t:?}:\n{}", run.describe());
    }
}

/// The failure contract: non-zero exit, exactly one stderr line `redis-k8s: <hook>: …` naming `tool` and
/// containing `also`, no panic. Returns what is wrong, so a matrix can report every broken case at once.
fn check_fails_naming(run: &HookRun, tool: &str, also: &str, case: &str) -> Result<(), String> {
    let fail = |why: String| Err(format!("[{case}: {tool} in {}] {why}\n{}", run.hook, run.describe()));
    if !matches!(run.code, Some(c) if c != 0) {
        return fail(format!("the hook must fail, it exited {:?}", run.code));
    }
    let lines: Vec<&str> = run.stderr.lines().collect();
    if lines.len() != 1 || !run.stderr.ends_with('\n') {
        return fail(format!("stderr must be exactly one terminated line, got {} lines", lines.len()));
    }
    let line = lines[0];
    if !line.starts_with(&format!("redis-k8s: {}: ", run.hook)) {
        return fail("the line must start `redis-k8s: <hook>: `".into());
    }
    if !line.contains(tool) || !line.contains(also) {
        return fail(format!("the line must name {tool} and contain {also:?}"));
    }
    if let Some(t) = PANIC_TEXT.iter().find(|t| run.stderr.contains(*t) || run.stdout.contains(*t)) {
        return fail(format!("panic text {t:?}"));
    }
    Ok(())
}

/// `resource-get` failed to download (exit 1) or hung: the hook succeeds and the last status set is blocked
/// with the tool's error, `why`.
fn check_blocks_on_download_failure(run: &HookRun, why: &str) -> Result<(), String> {
    let fail = |e: &str| Err(format!("[{why}: resource-get in {}] {e}\n{}", run.hook, run.describe()));
    if run.code != Some(0) {
        return fail("a download that fails must not fail the hook");
    }
    let last = run.calls.iter().rev().find(|c| c.tool == "status-set").map(|c| c.args.join(" "));
    let want = format!("blocked unable to fetch resource: redis-image: {why}");
    if !last.as_deref().is_some_and(|l| l.contains(&want)) {
        return fail(&format!("the last status must end with {want:?}, got {last:?}"));
    }
    if let Some(t) = PANIC_TEXT.iter().find(|t| run.stderr.contains(*t) || run.stdout.contains(*t)) {
        return fail(&format!("panic text {t:?}"));
    }
    Ok(())
}

fn assert_all_ok(results: Vec<Result<(), String>>) {
    let total = results.len();
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(
        failures.is_empty(),
        "{} of {total} fault cases broke the contract:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn install_through_its_hooks_symlink() {
    let h = Harness::new("install-symlink");
    let run = h.hook_symlink("install");
    assert_ran(&run);
}

#[test]
fn config_changed_through_dispatch() {
    let h = Harness::new("dispatch-config-changed");
    let run = h.dispatch("config-changed");
    assert_ran(&run);
}

#[test]
fn every_known_hook_runs_cleanly_through_dispatch() {
    let h = Harness::new("every-hook");
    for hook in crate::support::listed_hooks() {
        let run = h.dispatch(&hook);
        assert_ran(&run);
    }
}

#[test]
fn tools_that_read_stdin_are_given_yaml() {
    let h = Harness::new("stdin");
    for hook in MATRIX_HOOKS {
        let run = h.dispatch(hook);
        assert_ran(&run);
        for call in &run.calls {
            if matches!(call.tool.as_str(), "pod-spec-set" | "k8s-spec-set" | "relation-set" | "state-set") {
                assert!(!call.stdin.trim().is_empty(), "{} called with empty stdin:\n{}", call.tool, run.describe());
                let parsed: Result<serde_yaml::Value, _> = serde_yaml::from_str(&call.stdin);
                assert!(parsed.is_ok(), "{} stdin is not YAML: {:?}\n{}", call.tool, parsed, call.stdin);
            }
        }
    }
}

#[test]
fn an_unknown_hook_is_a_usage_error_listing_the_known_ones() {
    let h = Harness::new("unknown-hook");
    let run = h.dispatch("frobnicate");
    assert_eq!(run.code, Some(2), "{}", run.describe());
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.describe());
    assert!(lines[0].starts_with("redis-k8s: "), "{}", run.describe());
    assert!(lines[0].contains("frobnicate") && lines[0].contains("known hooks"), "{}", run.describe());
    for hook in crate::support::listed_hooks() {
        assert!(lines[0].contains(&hook), "{hook} missing from the list: {}", lines[0]);
    }
    assert!(run.calls.is_empty(), "no tool may run for an unknown hook:\n{}", run.describe());
    assert_no_panic(&run);
}

#[test]
fn outside_a_hook_context_it_is_a_cli() {
    let dir = TempDir::new("cli");
    let cli = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let help = cli(&["--help"]);
    assert!(help.status.success(), "{help:?}");
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("--list-hooks") && text.contains("dispatch"), "{text}");

    let version = cli(&["--version"]);
    assert!(version.status.success(), "{version:?}");
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")), "{version:?}");

    let bare = cli(&[]);
    assert_eq!(bare.status.code(), Some(2), "{bare:?}");
    assert!(String::from_utf8_lossy(&bare.stderr).contains("not in a Juju hook context"), "{bare:?}");
}

/// Every tool `src/juju/hook_tools.rs` can run has a fake, so a new wrapper cannot slip past the matrix with
/// "not found on PATH" as its only behaviour.
#[test]
fn every_tool_in_hook_tools_has_a_fake() {
    let src = std::fs::read_to_string(Path::new(crate::support::REPO).join("src/juju/hook_tools.rs")).unwrap();
    let mut named = BTreeSet::new();
    for pat in ["self.run(\"", "self.json(\""] {
        for (i, _) in src.match_indices(pat) {
            let rest = &src[i + pat.len()..];
            named.insert(rest[..rest.find('"').unwrap()].to_string());
        }
    }
    assert!(named.len() >= 10, "parsing hook_tools.rs found too few tools: {named:?}");
    let faked: BTreeSet<String> = FAKE_TOOLS.iter().map(|(t, _)| t.to_string()).collect();
    let missing: Vec<&String> = named.difference(&faked).collect();
    assert!(missing.is_empty(), "tools without a fake in tests/support: {missing:?}");
}

#[test]
fn the_fakes_keep_the_contract() {
    let h = Harness::new("fakes");
    let out = std::process::Command::new(h.tools.join("resource-get"))
        .args(["--", "redis-image"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, h.resource.to_string_lossy().as_bytes(), "no trailing newline");
    let out = std::process::Command::new(h.tools.join("pod-spec-set"))
        .stdin(std::fs::File::open(h.charm.join("metadata.yaml")).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success());
    let calls = crate::support::parse_log(&std::fs::read_to_string(&h.log).unwrap());
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].args, ["--", "redis-image"]);
    assert!(calls[1].stdin.contains("name: redis-k8s"), "{:?}", calls[1]);
}

/// The tools each matrix hook calls on a clean run.
fn recorded_tools() -> Vec<(&'static str, Vec<String>)> {
    let h = Harness::new("record");
    MATRIX_HOOKS
        .iter()
        .map(|hook| {
            let run = h.dispatch(hook);
            assert_ran(&run);
            (*hook, run.tools())
        })
        .collect()
}

#[test]
fn fault_matrix_every_called_tool_failing_fails_the_hook_on_one_line() {
    let mut results = Vec::new();
    for (hook, tools) in recorded_tools() {
        for tool in &tools {
            let h = Harness::new("fault-exit1");
            h.override_tool(tool, &format!("echo 'ERROR boom from {tool}' >&2; exit 1"));
            if tool == "resource-get" {
                // A download that fails blocks the unit (layer:docker-resource's contract): not a failed hook.
                results.push(check_blocks_on_download_failure(&h.dispatch(hook), "ERROR boom from resource-get"));
            } else {
                results.push(check_fails_naming(&h.dispatch(hook), tool, &format!("boom from {tool}"), "exit 1"));
            }

            let h = Harness::new("fault-exit2");
            h.override_tool(
                tool,
                &format!(
                    "echo 'usage: {tool} [options]' >&2; echo 'ERROR flag provided but not defined: -z' >&2; exit 2"
                ),
            );
            results.push(check_fails_naming(&h.dispatch(hook), tool, "flag provided but not defined", "exit 2"));

            let h = Harness::new("fault-missing");
            h.remove_tool(tool);
            results.push(check_fails_naming(&h.dispatch(hook), tool, "not found", "missing from PATH"));

            if JSON_TOOLS.contains(&tool.as_str()) {
                let h = Harness::new("fault-json");
                h.override_tool(tool, r#"printf '%s\n' '{"port": 63'"#);
                results.push(check_fails_naming(&h.dispatch(hook), tool, "malformed JSON", "malformed JSON"));
            } else if tool == "resource-get" {
                let h = Harness::new("fault-garbage");
                h.override_tool(tool, r#"printf 'garbage\nmore garbage\n'"#);
                results.push(check_fails_naming(&h.dispatch(hook), tool, "unusable output", "garbage output"));
            }
        }
    }
    assert!(results.len() >= 6, "the matrix ran only {} cases", results.len());
    assert_all_ok(results);
}

#[test]
fn fault_matrix_a_hung_tool_is_killed_and_named() {
    let all: Vec<(&str, String)> =
        recorded_tools().into_iter().flat_map(|(hook, tools)| tools.into_iter().map(move |t| (hook, t))).collect();
    assert!(!all.is_empty());
    // Each case waits out the 3 s limit: run them side by side (the fakes sleep, they do not spin).
    let results: Vec<Result<(), String>> = std::thread::scope(|s| {
        let handles: Vec<_> = all
            .iter()
            .map(|(hook, tool)| {
                s.spawn(move || {
                    let mut h = Harness::new("fault-hang");
                    // 3 s, not less: on a loaded 2-core machine an ordinary fake tool can take over a second to start.
                    h.extra_env.push(("REDIS_K8S_TOOL_TIMEOUT".into(), "3".into()));
                    // `exec`: the tool is one process, as Juju's hook tools are, so the kill ends it and its
                    // pipes.
                    h.override_tool(tool, "exec sleep 30");
                    let started = std::time::Instant::now();
                    let run = h.dispatch(hook);
                    if tool == "resource-get" {
                        // A download that hangs is a download that failed: the unit blocks, the hook succeeds.
                        check_blocks_on_download_failure(&run, "resource-get did not finish within 3s")?;
                    } else {
                        check_fails_naming(&run, tool, "did not finish", "hangs")?;
                    }
                    match started.elapsed().as_secs() {
                        s if s < 20 => Ok(()),
                        s => Err(format!("[hangs: {tool} in {hook}] the hook took {s} s: the limit was not enforced")),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_all_ok(results);
}

// ---- A hostile environment and command line (issue 14, item 6) ----------------------------------------------

/// Panic text of any kind, `unwrap` included: none of it may reach a hook's output.
const PANIC_OR_UNWRAP: &[&str] = &["panicked", "unwrap", "RUST_BACKTRACE", "internal error", "stack backtrace"];

/// The longest stderr line a refusal may print: the unknown-hook line lists every hook (about 750 bytes), plus
/// at most 64 escaped characters of the input; far below the 120 KB the inputs here are.
const LINE_MAX: usize = 1_200;

/// Runs `program` as `argv0` (or its own path) with exactly `env`, in `h`'s charm dir, and returns what a
/// hook run returns.
fn run_raw(h: &Harness, label: &str, program: &Path, argv0: Option<&OsStr>, env: &[(OsString, OsString)]) -> HookRun {
    use std::os::unix::process::CommandExt;
    std::fs::write(&h.log, "").unwrap();
    let mut cmd = std::process::Command::new(program);
    if let Some(a) = argv0 {
        cmd.arg0(a);
    }
    let out = cmd
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(&h.charm)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    HookRun {
        hook: label.to_string(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        calls: crate::support::parse_log(&std::fs::read_to_string(&h.log).unwrap_or_default()),
    }
}

/// `hook`'s environment as Juju builds it, through dispatch, with `changes` applied (a `None` value unsets).
fn env_with(h: &Harness, hook: &str, changes: &[(&[u8], Option<&[u8]>)]) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = h.hook_env(hook).into_iter().map(|(k, v)| (k.into(), v.into())).collect();
    env.push(("JUJU_DISPATCH_PATH".into(), format!("hooks/{hook}").into()));
    for (name, value) in changes {
        let name = OsStr::from_bytes(name).to_os_string();
        env.retain(|(k, _)| *k != name);
        if let Some(v) = value {
            env.push((name, OsStr::from_bytes(v).to_os_string()));
        }
    }
    env
}

/// The refusal contract: exit `code`, exactly one terminated line on stderr starting `redis-k8s: ` and holding
/// every piece of `says`, bounded in length, no panic text anywhere, and no hook tool run.
fn check_refused(run: &HookRun, code: i32, says: &[&str]) -> Result<(), String> {
    let fail = |why: String| {
        let mut text = run.describe();
        text.truncate(4_000);
        Err(format!("[{}] {why}\n{text}", run.hook))
    };
    if run.code != Some(code) {
        return fail(format!("must exit {code}, exited {:?}", run.code));
    }
    let lines: Vec<&str> = run.stderr.lines().collect();
    if lines.len() != 1 || !run.stderr.ends_with('\n') {
        return fail(format!("stderr must be exactly one terminated line, got {} lines", lines.len()));
    }
    if !lines[0].starts_with("redis-k8s: ") || run.stderr.len() > LINE_MAX {
        return fail(format!("the line must start `redis-k8s: ` and be at most {LINE_MAX} bytes"));
    }
    if let Some(s) = says.iter().find(|s| !lines[0].contains(*s)) {
        return fail(format!("the line must contain {s:?}"));
    }
    if let Some(t) = PANIC_OR_UNWRAP.iter().find(|t| run.stderr.contains(*t) || run.stdout.contains(*t)) {
        return fail(format!("panic text {t:?}"));
    }
    if !run.calls.is_empty() {
        return fail("no hook tool may run when the hook cannot start".into());
    }
    Ok(())
}

#[test]
fn unrelated_variables_may_hold_any_bytes() {
    let h = Harness::new("env-unrelated");
    let dispatch = h.charm.join("dispatch");
    for (name, value) in [(&b"X"[..], &b"\xff"[..]), (b"\xfe\xff", b"1"), (b"LC_ALL", b"\xc3\x28"), (b"HOME", b"/\xff")]
    {
        let run = run_raw(&h, "install", &dispatch, None, &env_with(&h, "install", &[(name, Some(value))]));
        assert_ran(&run);
    }
}

#[test]
fn a_juju_variable_that_is_not_utf8_is_refused_by_name() {
    let h = Harness::new("env-not-utf8");
    let dispatch = h.charm.join("dispatch");
    let mut results = Vec::new();
    for (name, code) in [
        ("JUJU_UNIT_NAME", 1),
        ("JUJU_CHARM_DIR", 1),
        ("JUJU_MODEL_NAME", 1),
        ("JUJU_DISPATCH_PATH", 2),
        ("REDIS_K8S_TOOL_TIMEOUT", 1),
    ] {
        let env = env_with(&h, "config-changed", &[(name.as_bytes(), Some(b"redis-k8s/\xff0"))]);
        let run = run_raw(&h, name, &dispatch, None, &env);
        results.push(check_refused(&run, code, &[name, "not valid UTF-8", r#""redis-k8s/\xff0""#]));
        // Huge as well: only a short escaped prefix is echoed.
        let mut huge = b"\xff".to_vec();
        huge.extend(std::iter::repeat_n(b'\n', 120_000));
        let run =
            run_raw(&h, name, &dispatch, None, &env_with(&h, "config-changed", &[(name.as_bytes(), Some(&huge))]));
        results.push(check_refused(&run, code, &[name, "not valid UTF-8", r#""\xff\n\n"#, "…"]));
    }
    assert_all_ok(results);
}

#[test]
fn a_tool_time_limit_out_of_range_is_refused_naming_the_range() {
    let h = Harness::new("env-timeout");
    let dispatch = h.charm.join("dispatch");
    let mut results = Vec::new();
    for bad in ["1e300", "inf", "-inf", "NaN", "-1", "0", "0.01", "86401", "ten", "3s"] {
        let env = env_with(&h, "install", &[(b"REDIS_K8S_TOOL_TIMEOUT", Some(bad.as_bytes()))]);
        let run = run_raw(&h, bad, &dispatch, None, &env);
        results.push(check_refused(
            &run,
            1,
            &["redis-k8s: install: REDIS_K8S_TOOL_TIMEOUT must be", "from 0.1 to 86400", &format!("got \"{bad}\"")],
        ));
    }
    assert_all_ok(results);
    // Empty is unset, as Juju's own variables are; an in-range value is used.
    for good in ["", "3", "2.5"] {
        let env = env_with(&h, "install", &[(b"REDIS_K8S_TOOL_TIMEOUT", Some(good.as_bytes()))]);
        assert_ran(&run_raw(&h, "install", &dispatch, None, &env));
    }
}

#[test]
fn in_a_hook_context_with_no_hook_named_it_says_so() {
    let h = Harness::new("no-hook-named");
    let mut results = Vec::new();
    for program in [Path::new(BIN), &h.charm.join("dispatch")] {
        let env = env_with(&h, "install", &[(b"JUJU_DISPATCH_PATH", None)]);
        let run = run_raw(&h, "no hook", program, None, &env);
        results.push(check_refused(&run, 2, &["no hook to run", "JUJU_DISPATCH_PATH is not", "is not a hook"]));
        if run.stderr.contains("JUJU_UNIT_NAME is not set") {
            results.push(Err(format!("JUJU_UNIT_NAME is set, the message must not say otherwise: {}", run.stderr)));
        }
    }
    // And outside one, the same binary says that instead (still one line).
    let env = env_with(&h, "install", &[(b"JUJU_DISPATCH_PATH", None), (b"JUJU_UNIT_NAME", None)]);
    results.push(check_refused(
        &run_raw(&h, "no context", Path::new(BIN), None, &env),
        2,
        &["JUJU_UNIT_NAME is not set"],
    ));
    assert_all_ok(results);
}

#[test]
fn a_huge_program_name_or_dispatch_path_is_echoed_short() {
    let h = Harness::new("huge-argv0");
    let mut results = Vec::new();
    let huge = format!("{}\"\t", "h".repeat(120_000));
    // A 120 KB argv[0] in a hook context, as a name that is not a hook (and one that is not UTF-8 either).
    let mut not_utf8 = vec![0xffu8];
    not_utf8.extend(huge.as_bytes());
    for argv0 in [OsStr::new(&huge), OsStr::from_bytes(&not_utf8)] {
        let env = env_with(&h, "install", &[(b"JUJU_DISPATCH_PATH", None)]);
        let run = run_raw(&h, "huge argv[0]", Path::new(BIN), Some(argv0), &env);
        results.push(check_refused(&run, 2, &["the program name \"", "…", "is not a hook this charm handles"]));
    }
    // The same name outside a hook context is just the CLI.
    let env = env_with(&h, "install", &[(b"JUJU_DISPATCH_PATH", None), (b"JUJU_UNIT_NAME", None)]);
    let run = run_raw(&h, "huge argv[0], no context", Path::new(BIN), Some(OsStr::new(&huge)), &env);
    results.push(check_refused(&run, 2, &["not in a Juju hook context"]));
    // A 120 KB JUJU_DISPATCH_PATH, with a newline and a quote in it.
    let path = format!("hooks/{huge}");
    let env = env_with(&h, "install", &[(b"JUJU_DISPATCH_PATH", Some(path.as_bytes()))]);
    let run = run_raw(&h, "huge JUJU_DISPATCH_PATH", &h.charm.join("dispatch"), None, &env);
    results.push(check_refused(&run, 2, &["JUJU_DISPATCH_PATH \"hooks/hhh", "…", "known hooks"]));
    assert_all_ok(results);
}
