//! Fault injection over the whole lifecycle: every tool call of every hook, failing every way a hook tool can
//! fail, must fail the hook cleanly, commit nothing, and leave a unit that converges once the fault is gone.
//!
//! The call sites come from a clean run (`support::fake_unit::clean_run`), so a new call site is covered as
//! soon as the charm makes it; nothing here names which tools a hook calls. For each lifecycle step, each
//! call `(tool, nth)` it makes, and each fault kind (exit 1 with an `ERROR` line, exit 2, tool missing, hang
//! past the limit, and for tools whose output the charm reads: malformed JSON, non-UTF-8 bytes, a path with a
//! newline), the faulted hook must:
//! - fail (`Err` through the fake; non-zero exit with exactly one stderr line naming the tool for the binary);
//! - leave the flag store file, the state dir and the `state-set` mirror byte-identical, and commit no
//!   deferred change (pod spec, relation data, charm state), as Juju discards them (reference §1.4);
//! - never show a secret (the registry or Redis password) in the error, a log line, a status or argv;
//! - and, retried without the fault, reach exactly the state of a run that never failed, then finish the
//!   lifecycle in exactly the clean run's end state.
//!
//! One exception, layer:docker-resource's contract: `resource-get` exiting 1 (`could not download resource`) or
//! hanging is the resource failing, not the hook. The hook succeeds with `blocked "unable to fetch resource:
//! redis-image: …"`, no secret anywhere, and the next update-status fetches it again and heals the unit.
//!
//! The bulk runs in-process through the recording fake; a slice runs the real binary (`support::sim`): exit 1
//! at every call site, each tool missing in each hook, and exit 2, a hang and garbage output once per tool.
//! With `REDIS_K8S_LONG_TESTS=1` the real binary runs the whole matrix too. Both print their case counts.
//!
//! The shared lifecycle starts with a Redis password already in the peer bag, so every run is identical.
//! The path where the leader generates one (a different one per run) has its own matrix over install's
//! call sites, compared with the clean run but for the password itself.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::fake_unit::{self, FakeUnit, Step, Tamper, has_secret};
use crate::support::sim::{self, Sim};
use crate::support::{HookRun, JSON_TOOLS};
use redis_k8s::juju::ToolError;
use redis_k8s::juju::fake::{Fault, timeout_fault};

/// `REDIS_K8S_LONG_TESTS=1`: the real binary gets the whole matrix, not a slice.
fn long_run() -> bool {
    std::env::var_os("REDIS_K8S_LONG_TESTS").is_some_and(|v| v == "1")
}

/// A way for one tool call to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exit1,
    Exit2,
    Missing,
    Hang,
    MalformedJson,
    NotUtf8,
    PathWithNewline,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::Exit1,
        Kind::Exit2,
        Kind::Missing,
        Kind::Hang,
        Kind::MalformedJson,
        Kind::NotUtf8,
        Kind::PathWithNewline,
    ];

    /// Whether the fault applies to `tool` (garbage output only matters where the charm reads the output).
    fn applies(self, tool: &str) -> bool {
        match self {
            Kind::MalformedJson => JSON_TOOLS.contains(&tool),
            Kind::NotUtf8 => JSON_TOOLS.contains(&tool) || tool == "resource-get",
            Kind::PathWithNewline => tool == "resource-get",
            _ => true,
        }
    }

    /// Whether this is `resource-get` failing to download (exit 1) or hanging: the resource, not the hook,
    /// fails (the unit blocks and fetches it again later; see `fetch_failure_case`).
    fn is_fetch_failure(self, tool: &str) -> bool {
        tool == "resource-get" && matches!(self, Kind::Exit1 | Kind::Hang)
    }

    /// The fake's version of the fault: an injected error or replaced output.
    fn inject(self, tool: &str, nth: usize) -> (Vec<Fault>, Option<Tamper>) {
        let fault = |error| (vec![Fault { tool: tool.into(), nth, error }], None);
        let tamper = |output: &[u8]| (Vec::new(), Some(Tamper { tool: tool.into(), nth, output: output.to_vec() }));
        match self {
            Kind::Exit1 => fault(ToolError::Runtime { tool: tool.into(), message: format!("ERROR boom from {tool}") }),
            Kind::Exit2 => {
                fault(ToolError::Usage { tool: tool.into(), message: "ERROR flag provided but not defined: -z".into() })
            }
            Kind::Missing => fault(ToolError::Missing { tool: tool.into() }),
            Kind::Hang => fault(timeout_fault(tool)),
            Kind::MalformedJson => tamper(br#"{"port": 63"#),
            Kind::NotUtf8 => tamper(b"\xff\xfe\x80\n"),
            Kind::PathWithNewline => {
                tamper(b"/var/lib/juju/agents/unit-redis-k8s-0/resources/content.yaml\n/etc/passwd")
            }
        }
    }

    /// What the hook's error must say besides the tool's name.
    fn says(self) -> &'static str {
        match self {
            Kind::Exit1 => "boom from",
            Kind::Exit2 => "flag provided but not defined",
            Kind::Missing => "not found",
            Kind::Hang => "did not finish",
            Kind::MalformedJson | Kind::NotUtf8 | Kind::PathWithNewline => "unusable output",
        }
    }

    /// The sim's version: a shell snippet run instead of the tool's answer.
    fn snippet(self, tool: &str) -> String {
        match self {
            Kind::Exit1 => format!("echo 'ERROR boom from {tool}' >&2; exit 1"),
            Kind::Exit2 => format!(
                "echo 'usage: {tool} [options]' >&2; echo 'ERROR flag provided but not defined: -z' >&2; exit 2"
            ),
            Kind::Missing => unreachable!("the sim takes the tool off PATH instead"),
            Kind::Hang => "exec sleep 30".into(),
            Kind::MalformedJson => r#"printf '%s\n' '{"port": 63'; exit 0"#.into(),
            Kind::NotUtf8 => r"printf '\377\376\200\n'; exit 0".into(),
            Kind::PathWithNewline => r"printf '/tmp/x/content.yaml\n/etc/passwd'; exit 0".into(),
        }
    }
}

/// Runs one in-process case; `Err` says what broke.
fn fake_case(clean: &fake_unit::CleanRun, i: usize, tool: &str, nth: usize, kind: Kind) -> Result<(), String> {
    let step = Step::LIFECYCLE[i];
    let case = format!("[{} / {tool}#{nth} / {kind:?}]", step.label());
    let mut u = FakeUnit::restore("fm", &clean.before[i]);
    let before = u.end_state();
    let model0 = u.model().clone();
    let env = u.env_for(step);

    let (faults, tamper) = kind.inject(tool, nth);
    let r = u.run(step.hook(), &env, faults, tamper);
    if kind.is_fetch_failure(tool) {
        return fetch_failure_case(clean, i, &case, u, r.result);
    }
    let err = match r.result {
        Ok(()) => return Err(format!("{case} the hook succeeded despite the fault; calls: {:?}", r.calls)),
        Err(e) => e,
    };
    if !err.contains(tool) || !err.contains(kind.says()) {
        return Err(format!("{case} the error must name {tool} and say {:?}: {err}", kind.says()));
    }
    if err.contains('\n') || has_secret(&err) {
        return Err(format!("{case} the error is not one clean line: {err:?}"));
    }
    let after = u.end_state();
    // Immediate effects (status-set, application-version-set) stay, as in Juju; everything else must not move.
    if after.store != before.store || after.state_files != before.state_files {
        return Err(format!("{case} the store changed after a failed hook:\n{before:?}\n{after:?}"));
    }
    {
        let m = u.model();
        if m.state != model0.state {
            return Err(format!("{case} charm state (the store's mirror) was committed by a failed hook"));
        }
        if m.pod_spec != model0.pod_spec || m.pod_spec_commits != model0.pod_spec_commits {
            return Err(format!("{case} a pod spec was committed by a failed hook"));
        }
        if after.relations != before.relations {
            return Err(format!("{case} relation data was committed by a failed hook"));
        }
        if m.has_pending() {
            return Err(format!("{case} deferred changes outlived the hook"));
        }
        let leaked = m.logs.iter().chain(&m.statuses).any(|(_, msg)| has_secret(msg));
        if leaked || u.history.iter().any(|c| c.args.iter().any(|a| has_secret(a))) {
            return Err(format!("{case} a secret reached a log line, a status or argv"));
        }
    }

    let retry = u.run(step.hook(), &env, Vec::new(), None);
    if let Err(e) = retry.result {
        return Err(format!("{case} the retry without the fault failed: {e}"));
    }
    let got = u.end_state();
    if got != clean.after[i] {
        let diff = fake_unit::diff_end(&clean.after[i], &got);
        return Err(format!("{case} the retry did not reach the clean state: {diff}"));
    }
    for &s in &Step::LIFECYCLE[i + 1..] {
        if let Err(e) = u.step(s, Vec::new(), None).result {
            return Err(format!("{case} the rest of the lifecycle failed at {}: {e}", s.label()));
        }
    }
    let end = u.end_state();
    if end != clean.end {
        return Err(format!("{case} the lifecycle ended elsewhere: {}", fake_unit::diff_end(&clean.end, &end)));
    }
    Ok(())
}

/// layer:docker-resource's contract for a download that fails or hangs: the hook succeeds, blocked naming the
/// resource, no secret anywhere; the next update-status tries again and the rest of the lifecycle ends where
/// the clean run did.
fn fetch_failure_case(
    clean: &fake_unit::CleanRun,
    i: usize,
    case: &str,
    mut u: FakeUnit,
    result: Result<(), String>,
) -> Result<(), String> {
    result.map_err(|e| format!("{case} a failed download must not fail the hook: {e}"))?;
    {
        let m = u.model();
        match m.last_status() {
            Some(("blocked", msg)) if msg.starts_with("unable to fetch resource: redis-image: ") => {}
            other => return Err(format!("{case} expected blocked naming redis-image, got {other:?}")),
        }
        let leaked = m.logs.iter().chain(&m.statuses).any(|(_, msg)| has_secret(msg));
        if leaked || u.history.iter().any(|c| c.args.iter().any(|a| has_secret(a))) {
            return Err(format!("{case} a secret reached a log line, a status or argv"));
        }
    }
    let heal = u.run("update-status", &u.env_for(Step::UpdateStatus), Vec::new(), None);
    heal.result.map_err(|e| format!("{case} the update-status after it failed: {e}"))?;
    if !heal.calls.iter().any(|c| c.tool == "resource-get") {
        return Err(format!("{case} update-status did not fetch the resource again"));
    }
    if u.model().last_status().map(|(s, _)| s) == Some("blocked") {
        return Err(format!("{case} still blocked once the resource came back: {:?}", u.model().last_status()));
    }
    for &s in &Step::LIFECYCLE[i + 1..] {
        if let Err(e) = u.step(s, Vec::new(), None).result {
            return Err(format!("{case} the rest of the lifecycle failed at {}: {e}", s.label()));
        }
    }
    let (end, want) = (u.end_state(), &clean.end);
    if end.pod_spec != want.pod_spec || end.relations != want.relations || end.last_status != want.last_status {
        return Err(format!("{case} the lifecycle ended elsewhere: {}", fake_unit::diff_end(want, &end)));
    }
    Ok(())
}

fn report(what: &str, results: Vec<Result<(), String>>) {
    let total = results.len();
    let failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    assert!(
        failures.is_empty(),
        "{what}: {} of {total} cases broke the contract:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn fake_every_call_of_every_hook_failing_every_way_commits_nothing_and_converges() {
    let clean = fake_unit::clean_run("fm-clean");
    let mut cases = Vec::new();
    let mut sites = 0;
    let mut per_kind = BTreeMap::<String, usize>::new();
    for (i, r) in clean.results.iter().enumerate() {
        for (tool, nth) in r.call_sites() {
            sites += 1;
            for kind in Kind::ALL.into_iter().filter(|k| k.applies(&tool)) {
                *per_kind.entry(format!("{kind:?}")).or_default() += 1;
                cases.push((i, tool.clone(), nth, kind));
            }
        }
    }
    let results = crate::support::parallel(&cases, 8, |(i, tool, nth, kind)| fake_case(&clean, *i, tool, *nth, *kind));
    eprintln!(
        "fault matrix (in-process fake): {} hooks x {sites} call sites x up to {} fault kinds = {} cases {per_kind:?}",
        Step::LIFECYCLE.len(),
        Kind::ALL.len(),
        results.len()
    );
    assert!(sites >= 20 && results.len() >= 100, "the matrix is too small: {sites} sites, {} cases", results.len());
    report("in-process fault matrix", results);
}

/// Text that must never reach a hook's output: a panic is a bug, whatever the tool did.
const PANIC_TEXT: &[&str] = &["panicked", "RUST_BACKTRACE", "internal error", "stack backtrace"];

/// The binary's failure contract: non-zero exit, exactly one stderr line `redis-k8s: <hook>: …` naming
/// `tool` and saying `says`, no panic, no secret.
fn check_one_line_naming(run: &HookRun, tool: &str, says: &str) -> Result<(), String> {
    if !matches!(run.code, Some(c) if c != 0) {
        return Err(format!("the hook must fail, it exited {:?}", run.code));
    }
    let lines: Vec<&str> = run.stderr.lines().collect();
    if lines.len() != 1 || !run.stderr.ends_with('\n') {
        return Err(format!("stderr must be exactly one terminated line, got {}", lines.len()));
    }
    if !lines[0].starts_with(&format!("redis-k8s: {}: ", run.hook))
        || !lines[0].contains(tool)
        || !lines[0].contains(says)
    {
        return Err(format!("the line must start `redis-k8s: {}: `, name {tool} and say {says:?}", run.hook));
    }
    if let Some(t) = PANIC_TEXT.iter().find(|t| run.stderr.contains(*t) || run.stdout.contains(*t)) {
        return Err(format!("panic text {t:?}"));
    }
    if has_secret(&run.stderr) || has_secret(&run.stdout) {
        return Err("a secret reached the hook's output".into());
    }
    Ok(())
}

/// One real-binary case: the `n`th call (1-based) of step `i` is `tool` and fails as `kind`.
fn sim_case(clean: &sim::SimCleanRun, i: usize, n: usize, tool: &str, kind: Kind) -> Result<(), String> {
    let step = Step::LIFECYCLE[i];
    let case = format!("[binary: {} / call {n} {tool} / {kind:?}]", step.label());
    let mut s = Sim::restore("fm-bin", &clean.before[i]);
    let before = s.end_state();
    let model0 = s.model.clone();
    let files = |s: &Sim| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(s.state_dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let files0 = files(&s);
    let mut extra: Vec<(&str, &str)> = Vec::new();
    match kind {
        Kind::Missing => s.remove_tool(tool),
        Kind::Hang => {
            extra.push(("REDIS_K8S_TOOL_TIMEOUT", "3"));
            s.fault_at(n, &kind.snippet(tool));
        }
        _ => s.fault_at(n, &kind.snippet(tool)),
    }
    let run = s.run(step.hook(), step.relation(), &extra);
    if kind.is_fetch_failure(tool) {
        // The resource fails, not the hook: exit 0, blocked naming it, healed by the next update-status.
        if run.code != Some(0) || has_secret(&run.stderr) || has_secret(&run.stdout) {
            return Err(format!("{case} a failed download must not fail the hook\n{}", run.describe()));
        }
        match s.model.statuses.last() {
            Some((st, msg)) if st == "blocked" && msg.starts_with("unable to fetch resource: redis-image: ") => {}
            other => return Err(format!("{case} expected blocked naming redis-image, got {other:?}")),
        }
        let heal = s.run("update-status", None, &[]);
        let healed = s.model.statuses.last().is_some_and(|(st, _)| st != "blocked");
        if heal.code != Some(0) || !healed {
            return Err(format!("{case} update-status did not heal it\n{}", heal.describe()));
        }
        return Ok(());
    }
    check_one_line_naming(&run, tool, kind.says()).map_err(|e| format!("{case} {e}\n{}", run.describe()))?;
    let after = s.end_state();
    if after.store != before.store || files(&s) != files0 {
        return Err(format!("{case} the store or the state dir changed after a failed hook"));
    }
    if s.model.state != model0.state || s.model.pod_spec != model0.pod_spec || after.relations != before.relations {
        return Err(format!("{case} a deferred change was committed by a failed hook"));
    }
    if kind == Kind::Missing {
        s.restore_tool(tool);
    }
    let retry = s.run(step.hook(), step.relation(), &[]);
    if retry.code != Some(0) {
        return Err(format!("{case} the retry failed:\n{}", retry.describe()));
    }
    let got = s.end_state();
    if got != clean.after[i] {
        let diff = sim::diff_end(&clean.after[i], &got);
        return Err(format!("{case} the retry did not reach the clean state: {diff}"));
    }
    Ok(())
}

#[test]
fn binary_slice_of_the_matrix_fails_on_one_line_commits_nothing_and_converges() {
    let clean = sim::sim_clean_run("fm-bin-clean");
    let mut cases: Vec<(usize, usize, String, Kind)> = Vec::new();
    let mut per_hook = BTreeSet::new();
    let mut per_tool = BTreeSet::new();
    for (i, calls) in clean.calls.iter().enumerate() {
        for (k, call) in calls.iter().enumerate() {
            let tool = call.tool.clone();
            if long_run() {
                // Every kind at every call site, as in-process.
                for kind in Kind::ALL.into_iter().filter(|k| k.applies(&tool) && *k != Kind::Missing) {
                    cases.push((i, k + 1, tool.clone(), kind));
                }
                if per_hook.insert((i, tool.clone())) {
                    cases.push((i, k + 1, tool.clone(), Kind::Missing));
                }
                continue;
            }
            // Exit 1 at every call site.
            cases.push((i, k + 1, tool.clone(), Kind::Exit1));
            // Missing: the first call of each tool in each hook is the one that fails.
            if per_hook.insert((i, tool.clone())) {
                cases.push((i, k + 1, tool.clone(), Kind::Missing));
            }
            // The rest once per tool across the lifecycle: the in-process matrix covers every site, and
            // a hang case waits out the 3 s limit.
            if per_tool.insert(tool.clone()) {
                for kind in [Kind::Exit2, Kind::Hang, Kind::MalformedJson, Kind::NotUtf8, Kind::PathWithNewline] {
                    if kind.applies(&tool) {
                        cases.push((i, k + 1, tool.clone(), kind));
                    }
                }
            }
        }
    }
    let results = crate::support::parallel(&cases, 8, |(i, n, tool, kind)| sim_case(&clean, *i, *n, tool, *kind));
    let sites: usize = clean.calls.iter().map(Vec::len).sum();
    let mut per_kind = BTreeMap::<String, usize>::new();
    for (_, _, _, k) in &cases {
        *per_kind.entry(format!("{k:?}")).or_default() += 1;
    }
    eprintln!(
        "fault matrix (real binary): {} hooks x {sites} call sites, {} cases {per_kind:?}",
        Step::LIFECYCLE.len(),
        results.len()
    );
    report("real-binary fault matrix", results);
}

/// The password the leader generated and shared in the peer application bag, if any.
fn shared_password(u: &FakeUnit) -> Option<String> {
    u.model().relations.get(fake_unit::PEER_RID).and_then(|r| r.local_app.get("password").cloned())
}

/// The generated-password path (no password shared yet, none configured): the leader makes one in install.
/// A fault anywhere in that install commits no password anywhere; the retry generates one that the peer
/// bag, the store and the pod spec all agree on; it never changes for the rest of the lifecycle; and every
/// state along the way equals the clean run's but for the password itself.
#[test]
fn generated_password_path_fails_cleanly_and_converges_but_for_the_password() {
    let fresh = FakeUnit::fresh;
    let mut clean = fresh("gen-clean");
    clean.run_clean(&Step::LIFECYCLE);
    let clean_pw = shared_password(&clean).expect("the leader shared a generated password");
    assert!(clean_pw.len() >= 16 && clean_pw.chars().all(|c| c.is_ascii_alphanumeric()), "{clean_pw:?}");
    let clean_end = fake_unit::normalized(&clean.end_state(), &clean_pw);

    let mut probe = fresh("gen-probe");
    let install = probe.step(Step::Install, Vec::new(), None);
    install.result.clone().expect("clean install");
    drop(probe);
    let mut cases: Vec<(String, usize, Kind)> = Vec::new();
    for (tool, nth) in install.call_sites() {
        // A download that fails or hangs blocks instead of failing install (the main matrix covers it).
        for kind in Kind::ALL.into_iter().filter(|k| k.applies(&tool) && !k.is_fetch_failure(&tool)) {
            cases.push((tool.clone(), nth, kind));
        }
    }
    let results = crate::support::parallel(&cases, 8, |(tool, nth, kind)| -> Result<(), String> {
        let case = format!("[generated password / install / {tool}#{nth} / {kind:?}]");
        let mut u = fresh("gen-fault");
        let (faults, tamper) = kind.inject(tool, *nth);
        if u.step(Step::Install, faults, tamper).result.is_ok() {
            return Err(format!("{case} the hook succeeded despite the fault"));
        }
        if shared_password(&u).is_some() || u.store_bytes().is_some() || u.model().pod_spec.is_some() {
            return Err(format!("{case} a failed install committed a password, a store or a spec"));
        }
        u.step(Step::Install, Vec::new(), None).result.map_err(|e| format!("{case} retry: {e}"))?;
        let pw = shared_password(&u).ok_or(format!("{case} the retry shared no password"))?;
        let store = String::from_utf8(u.store_bytes().unwrap_or_default()).unwrap_or_default();
        let spec = u.model().pod_spec.clone().unwrap_or_default();
        if !store.contains(&pw) || !spec.contains(&pw) {
            return Err(format!("{case} the store or the pod spec does not hold the shared password"));
        }
        u.run_clean(&Step::LIFECYCLE[1..]);
        if shared_password(&u).as_deref() != Some(pw.as_str()) {
            return Err(format!("{case} the shared password changed later in the lifecycle"));
        }
        let end = fake_unit::normalized(&u.end_state(), &pw);
        if end != clean_end {
            return Err(format!("{case} the lifecycle ended elsewhere: {}", fake_unit::diff_end(&clean_end, &end)));
        }
        Ok(())
    });
    eprintln!("generated-password path: {} install faults", results.len());
    report("generated-password path", results);
}

// ---- Redis and Sentinel administration ---------------------------------------------------------------------

use redis_k8s::juju::HookEnv;
use redis_k8s::redis::admin::fake::{Fault as AdminFault, FaultKind};

/// Every way a session with a pod's Redis or Sentinel can go wrong.
fn admin_kinds() -> [FaultKind; 4] {
    [
        FaultKind::NotRunning,
        FaultKind::Timeout,
        FaultKind::AuthRefused,
        FaultKind::Reply("ERR injected by the test".into()),
    ]
}

/// One hook of a lifecycle for the administration matrix: what changes in the model first, then the hook.
struct AdminStep {
    label: &'static str,
    hook: &'static str,
    env: fn(&FakeUnit) -> HookEnv,
    prepare: fn(&mut FakeUnit),
}

/// The snapshots and states of a clean run of `steps` from `start`.
struct AdminRun {
    before: Vec<fake_unit::Snapshot>,
    after: Vec<fake_unit::EndState>,
    end: fake_unit::EndState,
}

fn admin_clean_run(start: &fake_unit::Snapshot, steps: &[AdminStep]) -> AdminRun {
    let mut u = FakeUnit::restore("am-clean", start);
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for s in steps {
        (s.prepare)(&mut u);
        before.push(u.snapshot());
        let env = (s.env)(&u);
        if let Err(e) = u.run(s.hook, &env, Vec::new(), None).result {
            panic!("clean {}: {e}", s.label);
        }
        after.push(u.end_state());
    }
    let end = u.end_state();
    AdminRun { before, after, end }
}

/// One session of a clean run: the server it went to and its first command.
#[derive(Debug, Clone)]
struct Session {
    addr: String,
    command: String,
}

impl Session {
    /// A check (update-status, peer hooks) rather than a change: its failure becomes the status.
    fn is_check(&self) -> bool {
        matches!(self.command.as_str(), "CONFIG GET" | "SENTINEL MASTER" | "PING" | "INFO")
    }
}

/// Runs one case: the server of one session of step `i` fails that command with `kind` for the whole hook (a
/// fault that goes away on the next try is absorbed by retries, which is right).
fn admin_case(
    run: &AdminRun,
    steps: &[AdminStep],
    i: usize,
    session: &Session,
    kind: &FaultKind,
) -> Result<(), String> {
    let step = &steps[i];
    let case = format!("[{} / {} {} / {kind:?}]", step.label, session.addr, session.command);
    let mut u = FakeUnit::restore("am", &run.before[i]);
    let before = u.end_state();
    let model0 = u.model().clone();
    u.cluster
        .inject(AdminFault { command: Some(session.command.clone()), ..AdminFault::on(&session.addr, kind.clone()) });
    let env = (step.env)(&u);
    let r = u.run(step.hook, &env, Vec::new(), None);
    u.cluster.state_mut().faults.clear();
    match r.result {
        Err(e) => {
            if *kind == FaultKind::NotRunning {
                return Err(format!("{case} a pod that is not running failed the hook (it must be skipped): {e}"));
            }
            if session.is_check() {
                return Err(format!("{case} a failed check failed the hook (it must become the status): {e}"));
            }
            if !e.contains("redis-k8s-") || e.contains('\n') || has_secret(&e) {
                return Err(format!("{case} the error must be one clean line naming the pod: {e:?}"));
            }
            let after = u.end_state();
            let m = u.model();
            if after.store != before.store || m.state != model0.state || after.relations != before.relations {
                return Err(format!("{case} a failed hook committed something"));
            }
            if m.pod_spec_commits != model0.pod_spec_commits {
                return Err(format!("{case} a failed hook committed a pod spec"));
            }
            drop(m);
            if let Err(e) = u.run(step.hook, &env, Vec::new(), None).result {
                return Err(format!("{case} the retry without the fault failed: {e}"));
            }
        }
        Ok(()) => {
            if *kind != FaultKind::NotRunning && !session.is_check() {
                return Err(format!("{case} the hook succeeded although a running pod failed a change"));
            }
            let status = u.model().last_status().map(|(s, m)| format!("{s}: {m}")).unwrap_or_default();
            if has_secret(&status) {
                return Err(format!("{case} a secret reached the status"));
            }
            // A pod that is not running is Juju's to show (its unit's container status); one that answers
            // wrongly is the leader's to report.
            if session.is_check()
                && *kind != FaultKind::NotRunning
                && step.hook == "update-status"
                && !status.starts_with("waiting: replication degraded: redis-k8s-")
            {
                return Err(format!("{case} update-status must name the pod that failed the check: {status}"));
            }
            if session.is_check() {
                // The next check, without the fault, restores the clean state.
                if let Err(e) = u.run(step.hook, &env, Vec::new(), None).result {
                    return Err(format!("{case} the same hook without the fault failed: {e}"));
                }
            }
        }
    }
    let got = u.end_state();
    if got != run.after[i] {
        return Err(format!("{case} did not reach the clean state: {}", fake_unit::diff_end(&run.after[i], &got)));
    }
    for s in &steps[i + 1..] {
        (s.prepare)(&mut u);
        let env = (s.env)(&u);
        if let Err(e) = u.run(s.hook, &env, Vec::new(), None).result {
            return Err(format!("{case} the rest of the lifecycle failed at {}: {e}", s.label));
        }
    }
    let end = u.end_state();
    if end != run.end {
        return Err(format!("{case} the lifecycle ended elsewhere: {}", fake_unit::diff_end(&run.end, &end)));
    }
    Ok(())
}

/// Every session of every step of `steps` (recorded from a clean run from `start`), failing every way.
fn admin_matrix(what: &str, start: &fake_unit::Snapshot, steps: &[AdminStep]) {
    let run = admin_clean_run(start, steps);
    let mut cases: Vec<(usize, Session, FaultKind)> = Vec::new();
    let mut per_step = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let mut u = FakeUnit::restore("am-probe", &run.before[i]);
        let base = u.cluster.calls().len();
        let env = (step.env)(&u);
        u.run(step.hook, &env, Vec::new(), None).result.expect("a clean step");
        let calls = u.cluster.calls()[base..].to_vec();
        per_step.push(format!("{}: {}", step.label, calls.len()));
        for call in calls {
            let command = redis_k8s::redis::admin::command_name(&call.cmds[0]);
            for kind in admin_kinds() {
                cases.push((i, Session { addr: call.addr.clone(), command: command.clone() }, kind));
            }
        }
    }
    eprintln!("{what}: {} cases; sessions per step: {}", cases.len(), per_step.join(", "));
    assert!(cases.len() >= 16, "{what}: the lifecycle must reach the pods: {per_step:?}");
    let results = crate::support::parallel(&cases, 8, |(i, session, kind)| admin_case(&run, steps, *i, session, kind));
    report(what, results);
}

fn plain_env(u: &FakeUnit) -> HookEnv {
    u.env.clone()
}

fn peer_env(u: &FakeUnit) -> HookEnv {
    HookEnv {
        relation: Some("redis-peers".into()),
        relation_id: Some(fake_unit::PEER_RID.into()),
        remote_app: Some("redis-k8s".into()),
        ..u.env.clone()
    }
}

/// The shared lifecycle's hooks that reach the pods (one unit): update-status checks them, the port change
/// changes them. A pod that is not running is skipped; a running pod that does not answer, refuses the password
/// or refuses the command fails a hook that changes the pods (one line naming the pod, nothing committed, the
/// retry converges) and becomes the status of update-status (which the next check clears); either way the
/// lifecycle ends exactly where a clean run does.
#[test]
fn admin_every_session_of_the_lifecycle_failing_every_way() {
    let mut u = FakeUnit::new("am-start");
    u.run_clean(&[Step::Install, Step::LeaderElected, Step::ConfigChanged, Step::Start]);
    let steps = [
        AdminStep { label: "update-status", hook: "update-status", env: plain_env, prepare: |_| {} },
        AdminStep {
            label: "config-changed (maxmemory 100mb)",
            hook: "config-changed",
            env: plain_env,
            prepare: |u| {
                u.model().config.insert("maxmemory".into(), serde_json::json!("100mb"));
            },
        },
        AdminStep {
            label: "config-changed (port 7000)",
            hook: "config-changed",
            env: plain_env,
            prepare: |u| {
                u.model().config.insert("port".into(), serde_json::json!(7000));
            },
        },
    ];
    admin_matrix("administration fault matrix (lifecycle)", &u.snapshot(), &steps);
}

/// A password rotation on three units, from the pending password the action shared: the leader's relation-changed
/// makes every Redis and Sentinel take it and shares it, acknowledgements arrive, and update-status retires the
/// old one. Every session of those hooks failing every way, as above.
#[test]
fn admin_every_session_of_a_three_unit_rotation_failing_every_way() {
    let mut u = FakeUnit::new("am-rot");
    {
        let mut m = u.model();
        let peers = m.relations.get_mut(fake_unit::PEER_RID).unwrap();
        peers.units.insert("redis-k8s/1".into(), Default::default());
        peers.units.insert("redis-k8s/2".into(), Default::default());
    }
    *u.cluster.state_mut() =
        redis_k8s::redis::admin::fake::FakeCluster::healthy("redis-k8s", 3, 6379, Some(fake_unit::REDIS_PW))
            .state()
            .clone();
    u.run_clean(&[Step::Install, Step::LeaderElected, Step::ConfigChanged, Step::Start, Step::UpdateStatus]);
    u.action("rotate-password").result.expect("rotate-password");
    assert!(
        u.model().relations[fake_unit::PEER_RID].local_app.contains_key("pending-password"),
        "the action leaves a pending password"
    );
    let steps = [
        AdminStep {
            label: "redis-peers-relation-changed (promote)",
            hook: "redis-peers-relation-changed",
            env: peer_env,
            prepare: |_| {},
        },
        AdminStep {
            label: "redis-peers-relation-changed (acknowledged)",
            hook: "redis-peers-relation-changed",
            env: peer_env,
            prepare: |u| {
                let mut m = u.model();
                let peers = m.relations.get_mut(fake_unit::PEER_RID).unwrap();
                let generation = peers.local_app.get("password-generation").cloned().unwrap_or_default();
                for unit in ["redis-k8s/1", "redis-k8s/2"] {
                    peers.units.get_mut(unit).unwrap().insert("published-generation".into(), generation.clone());
                }
            },
        },
        AdminStep { label: "update-status (retire)", hook: "update-status", env: plain_env, prepare: |_| {} },
    ];
    admin_matrix("administration fault matrix (rotation)", &u.snapshot(), &steps);
}
