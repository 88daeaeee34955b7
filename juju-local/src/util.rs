//! Small system helpers shared by the agent side and the hook tools: atomic file writes, advisory
//! locks, random ids, clock formatting and process liveness checks. Nothing here knows about Juju.

use anyhow::{Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes `data` to `path` atomically: a temp file in the same directory, fsync'd, then renamed.
pub fn atomic_write(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().context("path has no parent directory")?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    {
        // Mode 0600: the model, hook contexts and resource files hold secrets (pod specs carry the Redis
        // password in a Secret, resources a registry password), as a controller's database does.
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// An exclusive advisory lock (flock) held until dropped.
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Blocks until the exclusive lock on `path` (created if missing) is held.
    pub fn acquire(path: &Path) -> Result<FileLock> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open lock {}", path.display()))?;
        // SAFETY: flock on a valid, owned file descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            anyhow::bail!("cannot lock {}: {}", path.display(), std::io::Error::last_os_error());
        }
        Ok(FileLock { _file: file })
    }
}

/// Tries the exclusive lock without waiting: None when another process holds it.
pub fn try_lock(path: &Path) -> Result<Option<FileLock>> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open lock {}", path.display()))?;
    // SAFETY: flock on a valid, owned file descriptor.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Ok(None);
    }
    Ok(Some(FileLock { _file: file }))
}

/// FNV-1a, 64 bits: a hash that is the same in every build (template revisions, volume contents).
pub fn fnv64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Standard base64 with padding (Secret data in desired.json).
pub fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Sends one signal to one process (no process group), when it is still the process we started.
pub fn signal(pid: i32, start_ticks: u64, sig: i32) -> bool {
    if !process_alive(pid, start_ticks) {
        return false;
    }
    // SAFETY: kill(2) on a positive pid we verified by its start time.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// A random non-negative 63-bit integer, as Go's `rand.Int63` gives Juju's context ids.
pub fn random_u63() -> u64 {
    let mut buf = [0u8; 8];
    let ok = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).is_ok();
    if !ok {
        let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        buf = ((t as u64) ^ ((std::process::id() as u64) << 32)).to_le_bytes();
    }
    u64::from_le_bytes(buf) >> 1
}

/// A random version-4 UUID string.
pub fn random_uuid() -> String {
    let a = random_u63();
    let b = random_u63();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a & 0xfff) as u16,
        0x8000 | ((b >> 48) as u16 & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// `HH:MM:SS` (UTC) for log lines, as `juju debug-log` shows them.
/// The civil date (year, month, day) of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

pub fn clock(ms: u64) -> String {
    let s = (ms / 1000) % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

/// Appends one line to a log file (O_APPEND, one write per line so concurrent writers interleave by line).
pub fn append_line(path: &Path, line: &str) {
    if let Some(dir) = path.parent() {
        let _ = fs::create_dir_all(dir);
    }
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let mut text = line.trim_end_matches('\n').to_string();
        text.push('\n');
        let _ = f.write_all(text.as_bytes());
    }
}

/// The start time (clock ticks since boot, field 22 of `/proc/<pid>/stat`) of a live, non-zombie process.
pub fn process_start_ticks(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); field 22 is index 19.
    let state = *fields.first()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// True when `pid` is alive and still the process that was started at `start_ticks` (no pid reuse).
pub fn process_alive(pid: i32, start_ticks: u64) -> bool {
    process_start_ticks(pid) == Some(start_ticks)
}

/// Splits `key=value`; the error text is Juju's (`expected "key=value", got "x"`).
pub fn split_kv(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected \"key=value\", got {s:?}")),
    }
}

/// Decodes standard base64 (Kubernetes secret `data`), ignoring whitespace.
pub fn base64_decode(s: &str) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.chars().filter(|c| !c.is_whitespace()) {
        if c == '=' {
            break;
        }
        let v = match c {
            'A'..='Z' => c as u32 - 'A' as u32,
            'a'..='z' => c as u32 - 'a' as u32 + 26,
            '0'..='9' => c as u32 - '0' as u32 + 52,
            '+' => 62,
            '/' => 63,
            _ => return Err(format!("illegal base64 data: {c:?}")),
        };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// Quotes a string for display the way Go's `%q` does for plain text.
pub fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_roundtrip_known_value() {
        assert_eq!(base64_decode("aGVsbG8gd29ybGQ=").unwrap(), b"hello world");
        assert!(base64_decode("a*b").is_err());
    }

    #[test]
    fn base64_encodes_what_it_decodes() {
        for s in ["", "a", "ab", "abc", "hello world", "\u{0}\u{1}x"] {
            assert_eq!(base64_decode(&base64_encode(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(base64_encode(b"hello world"), "aGVsbG8gd29ybGQ=");
    }

    #[test]
    fn kv_split_matches_juju_messages() {
        assert_eq!(split_kv("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(split_kv("x").unwrap_err(), "expected \"key=value\", got \"x\"");
    }

    #[test]
    fn own_process_is_alive() {
        let pid = std::process::id() as i32;
        let ticks = process_start_ticks(pid).unwrap();
        assert!(process_alive(pid, ticks));
        assert!(!process_alive(pid, ticks + 1));
    }
}
