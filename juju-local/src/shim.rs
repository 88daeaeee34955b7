//! `juju-local __ns-shim`: the first step of every hook and container juju-local starts. It enters
//! the pod's network namespace (when asked), makes a private mount namespace with no network
//! namespace mounts in it, bind-mounts the files it is given read-only, and execs the command.
//!
//! Why the mount namespace: bubblewrap's `--dev-bind / /` binds the host root recursively and then
//! remounts every submount to add `nosuid` (bubblewrap 0.8.0 `bind_mount`). `ip netns add` creates
//! `/run/netns/<name>` mounts without `nosuid`, so bwrap remounts each of them; when another model (or
//! another test) deletes a namespace between bwrap reading `/proc/self/mountinfo` and remounting it,
//! bwrap fails with `Unable to apply mount flags: remount "/newroot/run/netns/<name>"` and the hook or
//! container exits 1 before running anything. That is the failure seen once under load as "a test
//! charm's start hook exited 1". Detaching `/run/netns` (and everything under it) in a private mount
//! namespace first leaves bwrap nothing to race with; neither hooks nor containers need those mounts.

use std::ffi::CString;

/// The hidden subcommand name (`argv[1]`).
pub const NAME: &str = "__ns-shim";

/// What the shim was asked to do.
#[derive(Debug, Default, PartialEq)]
struct ShimArgs {
    netns: Option<String>,
    ro_binds: Vec<(String, String)>,
    argv: Vec<String>,
}

fn parse(args: &[String]) -> Result<ShimArgs, String> {
    let mut out = ShimArgs::default();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--netns" => {
                out.netns = Some(args.get(i + 1).ok_or("--netns needs a name")?.clone());
                i += 2;
            }
            "--ro-bind" => {
                let (src, dst) = (args.get(i + 1), args.get(i + 2));
                let (Some(src), Some(dst)) = (src, dst) else { return Err("--ro-bind needs SRC DST".into()) };
                out.ro_binds.push((src.clone(), dst.clone()));
                i += 3;
            }
            "--" => {
                out.argv = args[i + 1..].to_vec();
                break;
            }
            other => return Err(format!("unknown shim argument {other:?}")),
        }
    }
    if out.argv.is_empty() {
        return Err("no command".into());
    }
    Ok(out)
}

/// The argv prefix that runs a command through the shim.
pub fn prefix(netns: Option<&str>, ro_binds: &[(String, String)]) -> Vec<String> {
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "juju-local".into());
    let mut v = vec![exe, NAME.to_string()];
    if let Some(ns) = netns {
        v.extend(["--netns".to_string(), ns.to_string()]);
    }
    for (s, d) in ro_binds {
        v.extend(["--ro-bind".to_string(), s.clone(), d.clone()]);
    }
    v.push("--".into());
    v
}

fn cstr(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} holds a NUL byte"))
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// Mount points at or under `/run/netns`, deepest first.
fn netns_mounts() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<String> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == "/run/netns" || m.starts_with("/run/netns/"))
        .map(str::to_string)
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.len()));
    v.dedup();
    v
}

fn enter(a: &ShimArgs) -> Result<(), String> {
    if let Some(ns) = &a.netns {
        let f = std::fs::File::open(format!("/run/netns/{ns}")).map_err(|e| format!("netns {ns}: {e}"))?;
        use std::os::unix::io::AsRawFd;
        // SAFETY: setns on an open namespace file descriptor.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(os_err(&format!("setns {ns}")));
        }
    }
    // SAFETY: plain syscalls with valid, NUL-terminated arguments.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(os_err("unshare mount namespace"));
        }
        let root = cstr("/")?;
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_SLAVE,
            std::ptr::null(),
        ) != 0
        {
            return Err(os_err("make / a slave mount"));
        }
        for m in netns_mounts() {
            let p = cstr(&m)?;
            libc::umount2(p.as_ptr(), libc::MNT_DETACH);
        }
        for (src, dst) in &a.ro_binds {
            let (s, d) = (cstr(src)?, cstr(dst)?);
            if libc::mount(s.as_ptr(), d.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()) != 0 {
                return Err(os_err(&format!("bind {src} on {dst}")));
            }
            let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
            if libc::mount(std::ptr::null(), d.as_ptr(), std::ptr::null(), flags, std::ptr::null()) != 0 {
                return Err(os_err(&format!("remount {dst} read-only")));
            }
        }
    }
    Ok(())
}

/// Entry point: `juju-local __ns-shim [--netns NS] [--ro-bind SRC DST]... -- COMMAND...`.
pub fn main(args: &[String]) -> i32 {
    let a = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("juju-local shim: {e}");
            return 127;
        }
    };
    if let Err(e) = enter(&a) {
        eprintln!("juju-local shim: {e}");
        return 127;
    }
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(&a.argv[0]).arg0(&a.argv[0]).args(&a.argv[1..]).exec();
    eprintln!("juju-local shim: cannot exec {}: {err}", a.argv[0]);
    127
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn arguments() {
        let a = parse(&s(&["--netns", "n", "--ro-bind", "/a", "/b", "--", "sh", "-c", "x"])).unwrap();
        assert_eq!(a.netns.as_deref(), Some("n"));
        assert_eq!(a.ro_binds, vec![("/a".to_string(), "/b".to_string())]);
        assert_eq!(a.argv, s(&["sh", "-c", "x"]));
        assert!(parse(&s(&["--"])).is_err());
        assert!(parse(&s(&["--bogus", "--", "x"])).is_err());
    }
}
