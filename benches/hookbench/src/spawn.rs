//! Runs one hook process and measures it: wall time from spawn to reap, CPU time and peak RSS from
//! `wait4`.
//!
//! Peak RSS is Linux's `ru_maxrss` for the reaped child: the largest resident set of the hook process
//! and of the descendants it waited for (its tool processes), whichever is larger. The child is
//! started with `fork` (a no-op `pre_exec` keeps std off `posix_spawn`/`vfork`), so the harness's own
//! memory does not leak into the figure beyond its small anonymous set; the exit-0 floor shows that
//! baseline.

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// What one hook run cost.
#[derive(Debug, Clone, Copy)]
pub struct HookRun {
    pub wall_us: f64,
    /// User + system CPU time of the hook process and the tool processes it waited for.
    pub cpu_us: f64,
    pub max_rss_kb: u64,
    /// The exit code, or `None` when killed by a signal.
    pub code: Option<i32>,
}

/// Runs `program` with exactly `env`, in `cwd`, stdin from /dev/null, stdout and stderr to files.
pub fn run_hook(program: &Path, cwd: &Path, env: &[(String, String)], out: &Path, err: &Path) -> io::Result<HookRun> {
    let stdout = File::create(out)?;
    let stderr = File::create(err)?;
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    // SAFETY: the closure runs in the forked child before exec and does nothing at all, so it cannot
    // touch state that is unsafe after fork. It is there only to make std fork instead of vfork.
    unsafe {
        cmd.pre_exec(|| Ok(()));
    }
    let start = Instant::now();
    let child = cmd.spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: wait4 on our own child's pid, with valid pointers to locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    let wall_us = start.elapsed().as_secs_f64() * 1e6;
    // The child is reaped; std's handle must not wait for it again (dropping a Child never waits).
    drop(child);
    let code = if libc::WIFEXITED(status) { Some(libc::WEXITSTATUS(status)) } else { None };
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    let cpu_us = tv(usage.ru_utime) + tv(usage.ru_stime);
    Ok(HookRun { wall_us, cpu_us, max_rss_kb: u64::try_from(usage.ru_maxrss).unwrap_or(0), code })
}
