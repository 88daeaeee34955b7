//! The real charm binary run as a hook, against fake hook tools (see `support`).
//!
//! Nothing here names the tools a hook calls or their order: that is the charm's business and changes with
//! it. The fault matrix is generated from the calls a clean run records, so a new call site is covered as soon
//! as it exists: for every tool a hook calls, that tool failing (exit 1, exit 2), missing from PATH, printing
//! output that breaks its contract, or hanging must fail the hook with exactly one stderr line naming the tool;
//! except `resource-get` exiting 1 or hanging, a download that failed, which blocks the unit with the tool's
//! error and lets the hook succeed (layer:docker-resource's contract).

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use support::{BIN, FAKE_TOOLS, Harness, HookRun, JSON_TOOLS, TempDir};

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
    for hook in support::listed_hooks() {
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
    for hook in support::listed_hooks() {
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
    let src = std::fs::read_to_string(Path::new(support::REPO).join("src/juju/hook_tools.rs")).unwrap();
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
    let calls = support::parse_log(&std::fs::read_to_string(&h.log).unwrap());
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
