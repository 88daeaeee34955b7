//! The one seam between the charm and Juju: [`ToolRunner`] runs a hook tool and returns its stdout.
//!
//! Modelled on gocharm's `hook.ToolRunner`: charm logic never spawns processes, it asks a runner. The
//! real runner, [`ProcessRunner`], resolves the tool by bare name through `PATH` (where Juju puts the
//! unit's tools directory) and maps exit codes to [`ToolError`]; the recording fake in
//! [`crate::juju::fake`] answers from an in-memory model so logic is testable without a controller.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::error::ToolError;

/// Runs one hook tool with arguments and optional stdin; returns stdout on exit 0.
pub trait ToolRunner {
    fn run(&mut self, tool: &str, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, ToolError>;
}

/// Environment variable that overrides [`ProcessRunner`]'s per-call time limit, in seconds.
pub const TIMEOUT_ENV: &str = "REDIS_K8S_TOOL_TIMEOUT";

/// Default time limit for one tool call. Juju itself never times a hook out, so a hung tool would hang
/// the unit forever; no legitimate call takes anywhere near this long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Spawns real hook-tool processes.
#[derive(Debug, Clone)]
pub struct ProcessRunner {
    timeout: Duration,
}

impl ProcessRunner {
    pub fn new(timeout: Duration) -> Self {
        ProcessRunner { timeout }
    }

    /// A runner whose limit comes from [`TIMEOUT_ENV`] when set to a positive number of seconds.
    pub fn from_env() -> Self {
        let timeout = std::env::var(TIMEOUT_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(DEFAULT_TIMEOUT);
        ProcessRunner { timeout }
    }
}

impl Default for ProcessRunner {
    fn default() -> Self {
        ProcessRunner::new(DEFAULT_TIMEOUT)
    }
}

impl ToolRunner for ProcessRunner {
    fn run(&mut self, tool: &str, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, ToolError> {
        let io = |e: std::io::Error| ToolError::Io { tool: tool.to_string(), message: e.to_string() };
        let path = which::which(tool).map_err(|_| ToolError::Missing { tool: tool.to_string() })?;
        let mut child = Command::new(path)
            .args(args)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills whatever the tool started too (a child holding
            // the tool's stdout open would otherwise keep the hook waiting).
            .process_group(0)
            .spawn()
            .map_err(io)?;

        let writer = match (stdin, child.stdin.take()) {
            (Some(data), Some(mut pipe)) => {
                let data = data.to_vec();
                // A tool that exits without reading its input closes the pipe: not our failure.
                Some(thread::spawn(move || {
                    let _ = pipe.write_all(&data);
                }))
            }
            _ => None,
        };
        let mut err_pipe = child.stderr.take().ok_or_else(|| io(std::io::Error::other("no stderr pipe")))?;
        let err_reader = thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err_pipe.read_to_end(&mut buf);
            buf
        });

        // Watchdog: kills the tool by pid if it has not finished in time. Cancelled through the channel.
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let pid = child.id();
        let timeout = self.timeout;
        let watchdog = thread::spawn(move || match done_rx.recv_timeout(timeout) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // SAFETY: kill(2) on the process group of a child we spawned and have not yet reaped (the
                // main thread cancels this watchdog right after `wait` returns); no memory is touched.
                unsafe {
                    libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
                }
                true
            }
            _ => false,
        });

        let mut out = Vec::new();
        let read_result = match child.stdout.take() {
            Some(mut pipe) => pipe.read_to_end(&mut out).map(|_| ()),
            None => Ok(()),
        };
        let status = child.wait();
        let _ = done_tx.send(());
        let timed_out = watchdog.join().unwrap_or(false);
        let stderr = err_reader.join().unwrap_or_default();
        if let Some(w) = writer {
            let _ = w.join();
        }
        if timed_out {
            return Err(ToolError::Timeout { tool: tool.to_string(), after: timeout });
        }
        let status = status.map_err(io)?;
        read_result.map_err(io)?;
        if status.success() { Ok(out) } else { Err(ToolError::from_exit(tool, status.code(), &stderr)) }
    }
}
