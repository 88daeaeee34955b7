//! The one seam between the charm and Juju: [`ToolRunner`] runs a hook tool and returns its stdout.
//!
//! Modelled on gocharm's `hook.ToolRunner`: charm logic never spawns processes, it asks a runner. The
//! real runner, [`ProcessRunner`], resolves the tool by bare name through `PATH` (where Juju puts the
//! unit's tools directory) and maps exit codes to [`ToolError`]; the recording fake in
//! [`crate::juju::fake`] answers from an in-memory model so logic is testable without a controller.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use super::env::{EnvError, decode, shown};
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

    /// A runner whose limit comes from [`TIMEOUT_ENV`] ([`DEFAULT_TIMEOUT`] when unset or empty); a value
    /// that is not a number of seconds in [`TIMEOUT_RANGE`] is refused, naming the variable and the range.
    pub fn from_env() -> Result<Self, EnvError> {
        Ok(ProcessRunner { timeout: timeout_setting(std::env::var_os(TIMEOUT_ENV))? })
    }
}

/// The limits [`TIMEOUT_ENV`] accepts, in seconds: long enough for any tool on a loaded node, short enough to
/// mean something (and to fit a [`Duration`] however it is written).
pub const TIMEOUT_RANGE: (f64, f64) = (0.1, 86_400.0);

/// Reads [`TIMEOUT_ENV`]'s raw value: unset or empty gives [`DEFAULT_TIMEOUT`]; `inf`, `NaN`, `1e300`,
/// zero, negative and non-numbers are refused.
pub fn timeout_setting(value: Option<OsString>) -> Result<Duration, EnvError> {
    let Some(text) = decode(TIMEOUT_ENV, value)? else { return Ok(DEFAULT_TIMEOUT) };
    let (min, max) = TIMEOUT_RANGE;
    match text.trim().parse::<f64>() {
        // NaN fails both comparisons, so it is refused too.
        Ok(secs) if (min..=max).contains(&secs) => Ok(Duration::from_secs_f64(secs)),
        _ => Err(EnvError {
            name: TIMEOUT_ENV,
            problem: format!("must be a number of seconds from {min} to {max}, got {}", shown(OsStr::new(&text))),
        }),
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
        let deadline = Instant::now() + self.timeout;
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
        let timed_out = |child: &mut Child| {
            kill_group(child);
            ToolError::Timeout { tool: tool.to_string(), after: self.timeout }
        };

        // One thread, one poll(2) loop over the tool's pipes: no reader, writer or watchdog threads
        // (each hook makes several calls, and thread start-up was a measurable share of a hook's cost).
        let pipes = Pipes::new(child.stdin.take(), child.stdout.take(), child.stderr.take(), stdin).map_err(io)?;
        let (out, err) = match pipes.drain(deadline) {
            Ok(Some(outputs)) => outputs,
            Ok(None) => return Err(timed_out(&mut child)),
            Err(e) => {
                kill_group(&mut child);
                return Err(io(e));
            }
        };
        let mut nap = Duration::from_micros(20);
        let status = loop {
            match child.try_wait().map_err(io)? {
                Some(status) => break status,
                // The pipes closed but the tool has not exited yet: growing naps, bounded by the deadline.
                None if Instant::now() >= deadline => return Err(timed_out(&mut child)),
                None => {
                    std::thread::sleep(nap);
                    nap = (nap * 2).min(Duration::from_millis(5));
                }
            }
        };
        if status.success() { Ok(out) } else { Err(ToolError::from_exit(tool, status.code(), &err)) }
    }
}

/// Kills a tool's whole process group and reaps it.
fn kill_group(child: &mut Child) {
    // SAFETY: kill(2) on the process group of a child we spawned and have not reaped; no memory is touched.
    unsafe {
        libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
    }
    let _ = child.wait();
}

/// The pipes to one tool process, driven by poll(2).
struct Pipes<'a> {
    stdin: Option<ChildStdin>,
    input: &'a [u8],
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
}

fn set_nonblocking(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl(2) on a pipe descriptor we own; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl<'a> Pipes<'a> {
    fn new(
        stdin: Option<ChildStdin>,
        stdout: Option<ChildStdout>,
        stderr: Option<ChildStderr>,
        input: Option<&'a [u8]>,
    ) -> std::io::Result<Self> {
        for fd in [stdin.as_ref().map(|p| p.as_raw_fd()), stdout.as_ref().map(|p| p.as_raw_fd())]
            .into_iter()
            .chain([stderr.as_ref().map(|p| p.as_raw_fd())])
            .flatten()
        {
            set_nonblocking(fd)?;
        }
        Ok(Pipes { stdin, input: input.unwrap_or_default(), stdout, stderr })
    }

    /// Feeds stdin and collects stdout and stderr until both close. `None` when the deadline passed.
    fn drain(mut self, deadline: Instant) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        if self.input.is_empty() {
            self.stdin = None;
        }
        while self.stdout.is_some() || self.stderr.is_some() || self.stdin.is_some() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let mut fds: Vec<libc::pollfd> = Vec::with_capacity(3);
            let mut push = |fd: Option<RawFd>, events: libc::c_short| {
                if let Some(fd) = fd {
                    fds.push(libc::pollfd { fd, events, revents: 0 });
                }
            };
            push(self.stdout.as_ref().map(|p| p.as_raw_fd()), libc::POLLIN);
            push(self.stderr.as_ref().map(|p| p.as_raw_fd()), libc::POLLIN);
            push(self.stdin.as_ref().map(|p| p.as_raw_fd()), libc::POLLOUT);
            let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
            // SAFETY: `fds` is a live, correctly sized array of pollfd for the duration of the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                return Ok(None);
            }
            read_some(&mut self.stdout, &mut out)?;
            read_some(&mut self.stderr, &mut err)?;
            if let Some(pipe) = self.stdin.as_mut() {
                match pipe.write(self.input) {
                    Ok(k) => self.input = &self.input[k..],
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    // The tool exited or closed its input without reading it all: not our failure.
                    Err(_) => self.input = &[],
                }
                if self.input.is_empty() {
                    self.stdin = None; // close it: the tool sees end of input
                }
            }
        }
        Ok(Some((out, err)))
    }
}

/// Reads what is available from a pipe into `buf`; drops the pipe at end of file.
fn read_some<R: Read>(pipe: &mut Option<R>, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let Some(p) = pipe.as_mut() else { return Ok(()) };
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match p.read(&mut chunk) {
            Ok(0) => {
                *pipe = None;
                return Ok(());
            }
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, stdin: Option<&[u8]>, timeout: Duration) -> Result<Vec<u8>, ToolError> {
        // `sh -c` as the tool: run() resolves "sh" through PATH like any hook tool.
        let mut r = ProcessRunner::new(timeout);
        r.run("sh", &["-c", script], stdin)
    }

    #[test]
    fn output_large_input_and_exit_codes() {
        assert_eq!(sh("printf hello", None, Duration::from_secs(10)).unwrap(), b"hello");
        // Input larger than a pipe buffer, echoed back while it is still being written.
        let big = vec![b'x'; 300_000];
        assert_eq!(sh("cat", Some(&big), Duration::from_secs(10)).unwrap().len(), big.len());
        // A tool that ignores its input and exits.
        assert_eq!(sh("printf ok", Some(&big), Duration::from_secs(10)).unwrap(), b"ok");
        let e = sh("echo 'ERROR nope' >&2; exit 1", None, Duration::from_secs(10)).unwrap_err();
        assert_eq!(e, ToolError::Runtime { tool: "sh".into(), message: "ERROR nope".into() });
        let e = sh("exit 2", None, Duration::from_secs(10)).unwrap_err();
        assert!(matches!(e, ToolError::Usage { .. }));
        // Lots of stderr and stdout at once do not deadlock.
        let out = sh(
            "i=0; while [ $i -lt 2000 ]; do echo out; echo err >&2; i=$((i+1)); done",
            None,
            Duration::from_secs(10),
        );
        assert_eq!(out.unwrap().len(), 2000 * 4);
    }

    #[test]
    fn a_hung_tool_and_what_it_started_are_killed_at_the_deadline() {
        let e = sh("sleep 30 & sleep 30", None, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, ToolError::Timeout { .. }), "{e}");
        // Closed its pipes but kept running: still bounded.
        let e = sh("exec >/dev/null 2>&1; sleep 30", None, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, ToolError::Timeout { .. }), "{e}");
    }

    #[test]
    fn the_timeout_setting_is_a_number_of_seconds_in_range_or_refused() {
        use std::os::unix::ffi::OsStringExt;
        let setting = |v: &str| timeout_setting(Some(OsString::from(v)));
        assert_eq!(timeout_setting(None), Ok(DEFAULT_TIMEOUT));
        assert_eq!(setting(""), Ok(DEFAULT_TIMEOUT), "empty is unset, as for Juju's own variables");
        assert_eq!(setting("3"), Ok(Duration::from_secs(3)));
        assert_eq!(setting(" 2.5 "), Ok(Duration::from_millis(2500)));
        assert_eq!(setting("0.1"), Ok(Duration::from_millis(100)));
        assert_eq!(setting("86400"), Ok(Duration::from_secs(86_400)));
        for bad in ["inf", "-inf", "NaN", "-1", "0", "-0", "0.09", "86400.5", "1e300", "abc", "5s", "0x10"] {
            let e = setting(bad).unwrap_err();
            assert_eq!(e.name, TIMEOUT_ENV);
            assert_eq!(
                e.to_string(),
                format!("REDIS_K8S_TOOL_TIMEOUT must be a number of seconds from 0.1 to 86400, got \"{bad}\"")
            );
        }
        let e = timeout_setting(Some(OsString::from_vec(vec![b'3', 0xff]))).unwrap_err();
        assert_eq!(e.to_string(), r#"REDIS_K8S_TOOL_TIMEOUT is not valid UTF-8: "3\xff""#);
        let long = setting(&"9".repeat(10_000)).unwrap_err().to_string();
        assert!(long.len() < 200 && long.ends_with('…'), "{long}");
    }

    /// A fresh directory for one test's fake tools and pid files.
    fn scratch(label: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("redis-k8s-runner-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A fake hook tool: an executable `sh` script, addressed by its path (`which` takes a path as it is).
    fn fake_tool(dir: &std::path::Path, name: &str, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_string_lossy().into_owned()
    }

    /// `pid`'s state letter and process group, from `/proc/<pid>/stat`; `None` if there is no such process.
    fn stat(pid: &str) -> Option<(char, libc::pid_t)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // After the command name's closing parenthesis: state, ppid, pgrp, ...
        let mut fields = stat.rsplit_once(") ")?.1.split(' ');
        let state = fields.next()?.chars().next()?;
        Some((state, fields.nth(1)?.parse().ok()?))
    }

    /// Whether `pid` is a live process: a zombie is dead (killed, waiting for whoever reaps orphans).
    fn alive(pid: libc::pid_t) -> bool {
        stat(&pid.to_string()).is_some_and(|(state, _)| !matches!(state, 'Z' | 'X'))
    }

    /// The live processes of process group `pgid`.
    fn live_members(pgid: libc::pid_t) -> Vec<libc::pid_t> {
        let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
        entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok()?.parse::<libc::pid_t>().ok())
            .filter(|pid| stat(&pid.to_string()).is_some_and(|(state, g)| g == pgid && !matches!(state, 'Z' | 'X')))
            .collect()
    }

    /// A tool that starts a background child and a subshell with a child of its own, and hangs: at the deadline
    /// the runner must kill all of them (its whole process group), not just the process it spawned. Killing only
    /// the tool's pid, or not killing at all, leaves `sleep 300`s behind; the runner must also return, not wait.
    #[test]
    fn a_hung_tool_and_every_process_it_started_are_killed_at_the_timeout() {
        let dir = scratch("kill-group");
        let d = dir.display();
        let tool = fake_tool(
            &dir,
            "hung-tool",
            &format!(
                "echo $$ > '{d}/tool.pid.tmp' && mv '{d}/tool.pid.tmp' '{d}/tool.pid'\n\
                 sleep 300 & echo $! > '{d}/child.pid.tmp' && mv '{d}/child.pid.tmp' '{d}/child.pid'\n\
                 ( sleep 300 & echo $! > '{d}/grandchild.pid.tmp' && mv '{d}/grandchild.pid.tmp' '{d}/grandchild.pid'; \
                 wait ) &\n\
                 sleep 300"
            ),
        );
        let (tx, rx) = std::sync::mpsc::channel();
        let started = Instant::now();
        std::thread::spawn(move || {
            let _ = tx.send(ProcessRunner::new(Duration::from_secs(1)).run(&tool, &[], None));
        });
        let result = rx.recv_timeout(Duration::from_secs(30));
        let pid = |name: &str| -> libc::pid_t {
            let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
            text.trim().parse().unwrap_or_else(|_| panic!("{name} was not written: {text:?}"))
        };
        let pids = [pid("tool.pid"), pid("child.pid"), pid("grandchild.pid")];
        // The tool leads its own process group: every process it started is in it.
        let group = pids[0];
        // Bounded wait: SIGKILL is delivered at once, but the orphans' reaping (or zombie state) may lag.
        let gone_by = Instant::now() + Duration::from_secs(5);
        while (pids.iter().any(|p| alive(*p)) || !live_members(group).is_empty()) && Instant::now() < gone_by {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left: Vec<libc::pid_t> = pids.iter().copied().filter(|p| alive(*p)).collect();
        let members = live_members(group);
        // SAFETY: kill(2) on the group this test's tool leads; cleaning up after a failed assertion.
        unsafe { libc::kill(-group, libc::SIGKILL) };
        let _ = std::fs::remove_dir_all(&dir);
        let result = result.expect("the runner did not return within 30 s of a 1 s limit");
        assert!(matches!(result, Err(ToolError::Timeout { .. })), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
        assert!(left.is_empty(), "still running after the timeout: {left:?} of tool, child, grandchild {pids:?}");
        assert!(members.is_empty(), "processes of the tool's group still running: {members:?}");
    }

    /// A tool that reads its stdin only after a second gets it all: the runner waits on a full pipe (64 KiB on
    /// Linux) instead of dropping the rest, as it would if `WouldBlock` were taken for a closed pipe.
    #[test]
    fn stdin_past_a_full_pipe_arrives_whole_when_the_tool_reads_late() {
        let dir = scratch("late-reader");
        let tool = fake_tool(&dir, "late-reader", "sleep 1; cat");
        // 200 KiB that is not one repeated byte, so a lost or repeated chunk shows.
        let input: Vec<u8> = (0..200 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        let out = ProcessRunner::new(Duration::from_secs(30)).run(&tool, &["--file", "-"], Some(&input));
        let _ = std::fs::remove_dir_all(&dir);
        let out = out.unwrap();
        assert_eq!(out.len(), input.len(), "the tool read {} of {} bytes", out.len(), input.len());
        assert!(out == input, "the tool read the right length but different bytes");
    }

    #[test]
    fn a_missing_tool_is_named() {
        let e = ProcessRunner::default().run("no-such-hook-tool-xyz", &[], None).unwrap_err();
        assert_eq!(e, ToolError::Missing { tool: "no-such-hook-tool-xyz".into() });
    }
}
