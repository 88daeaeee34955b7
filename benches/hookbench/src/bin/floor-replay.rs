//! The same-calls floor: a static binary that makes exactly the hook tool calls redis-k8s made for this
//! hook, and nothing else.
//!
//! The harness records redis-k8s's calls per lifecycle step (the fake tools log each call as a 0x1E
//! record separator, the name and the arguments tab-separated, a newline) and points `HOOKBENCH_CALLS` at that file. This binary spawns each tool by
//! bare name through `PATH`, with the same arguments, stdin from /dev/null and stdout/stderr captured,
//! waits for it and checks its exit status. Whatever redis-k8s takes beyond this is its own code.

use std::process::{Command, ExitCode, Stdio};

fn main() -> ExitCode {
    let Some(path) = std::env::var_os("HOOKBENCH_CALLS") else {
        eprintln!("floor-replay: HOOKBENCH_CALLS is not set");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("floor-replay: reading {}: {e}", path.to_string_lossy());
            return ExitCode::from(2);
        }
    };
    for record in text.split('\u{1e}').filter(|r| !r.is_empty()) {
        let record = record.strip_suffix('\n').unwrap_or(record);
        let mut parts = record.split('\t');
        let Some(tool) = parts.next() else { continue };
        let out = Command::new(tool).args(parts).stdin(Stdio::null()).output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                eprintln!("floor-replay: {tool} exited with {}", o.status);
                return ExitCode::from(1);
            }
            Err(e) => {
                eprintln!("floor-replay: {tool}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}
