//! A small host name resolver that never calls glibc's `getaddrinfo`.
//!
//! The charm ships as one statically linked glibc binary, but Juju runs its hooks in an operator pod with another
//! glibc (Ubuntu 20.04's 2.31). A static glibc still resolves names through NSS modules that it `dlopen`s at run
//! time from the *host's* glibc, which is unreliable across glibc versions. The leader must nevertheless reach
//! Sentinels by their Kubernetes DNS names (`<app>-<n>.<app>-endpoints`), so name resolution is done here, with
//! the standard library's sockets only, the way musl does it:
//!
//! 1. an IP literal (`10.1.2.3`, `::1`, `[::1]`) is itself, without any I/O;
//! 2. `/etc/hosts`: every address listed for the name (case-insensitive, aliases included, trailing dot ignored);
//! 3. DNS over UDP to the (at most [`MAX_NAMESERVERS`]) `nameserver`s of `/etc/resolv.conf`, honouring `search`
//!    / `domain` and `options ndots:N`: a name with fewer dots than `ndots` tries the search list first, then
//!    as-is; one with more tries it as-is first; a name ending in `.` is absolute and tried alone.
//!
//! For each candidate name the resolver asks for `A` records, and for `AAAA` only when there is no `A` record, so
//! IPv4 comes first and one round trip is usually enough. NXDOMAIN or no data moves on to the next candidate; a
//! server failure or silence moves on to the next server, then the next round (at most [`RETRIES`] more), and if
//! no server answers, the lookup fails (as musl does: a missing answer is not proof the name does not exist).
//! The `timeout` bounds the whole call: each try gets an equal share of the time left.
//!
//! Replies are checked (query id from `/dev/urandom`, the QR bit, the question) and anything else, garbage or a
//! packet cut short included, is ignored; CNAME chains inside one answer are followed. Every read from a packet is
//! bounds-checked and name decompression is bounded, so no reply can panic or hang the parser.
//!
//! Not supported: TCP fallback (a truncated reply is used if it holds addresses, else counts as a server
//! failure), EDNS, `options timeout:`/`attempts:`/`rotate`, the `LOCALDOMAIN`/`RES_OPTIONS` variables, and
//! internationalised names.

use std::fs;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod conf;
mod packet;

pub use conf::ResolvConf;
use packet::*;

/// Where [`resolve`] reads static host entries.
pub const HOSTS_PATH: &str = "/etc/hosts";
/// Where [`resolve`] reads its nameservers, search list and options.
pub const RESOLV_CONF_PATH: &str = "/etc/resolv.conf";
/// The DNS port; only tests use another.
pub const DNS_PORT: u16 = 53;
/// Test-only: a resolv.conf to read instead of [`RESOLV_CONF_PATH`]. The tests that run the charm binary without
/// a cluster point it at an empty file, so that pod names are "not found" whatever the machine's own DNS says.
pub const RESOLV_CONF_ENV: &str = "REDIS_K8S_RESOLV_CONF";
/// How many `nameserver` lines are used, as in glibc and musl.
pub const MAX_NAMESERVERS: usize = 3;
/// How many domains of a `search` line are used.
pub const MAX_SEARCH_DOMAINS: usize = 6;
/// The largest `ndots` honoured (larger values are clamped, as in glibc).
pub const MAX_NDOTS: usize = 15;
/// How many times each nameserver is asked again about one name after the first try.
pub const RETRIES: usize = 2;

const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;
/// The addresses of `host` (an IP literal or a name) with `port`, IPv4 first, through `/etc/hosts` then DNS.
///
/// Errors: [`io::ErrorKind::InvalidInput`] for a malformed name, [`io::ErrorKind::NotFound`] when the name has
/// no address (or no nameserver is configured), [`io::ErrorKind::TimedOut`] when `timeout` ran out, and the
/// socket's error when no nameserver could be asked.
pub fn resolve(host: &str, port: u16, timeout: Duration) -> io::Result<Vec<SocketAddr>> {
    Resolver::default().resolve(host, port, timeout)
}

/// [`resolve`] for a `host:port` string (`[v6]:port` for an IPv6 literal), as `TcpStream::connect` accepts.
pub fn resolve_host_port(addr: &str, timeout: Duration) -> io::Result<Vec<SocketAddr>> {
    let (host, port) = split_host_port(addr)?;
    resolve(host, port, timeout)
}

/// Splits `host:port` or `[v6]:port`; a bare IPv6 address (ambiguous) or a missing port is an error.
pub fn split_host_port(addr: &str) -> io::Result<(&str, u16)> {
    let bad = || invalid_input(format!("{addr:?} is not host:port"));
    let (host, port) = match addr.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            (host, after.strip_prefix(':').ok_or_else(bad)?)
        }
        None => {
            let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
            if host.contains(':') {
                return Err(bad());
            }
            (host, port)
        }
    };
    if host.is_empty() || port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    Ok((host, port.parse().map_err(|_| bad())?))
}

/// Where a resolver reads its configuration; [`Default`] is the system's. Tests point it at their own files and
/// fake DNS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolver {
    pub hosts_path: PathBuf,
    pub resolv_conf_path: PathBuf,
    /// The port the nameservers are asked on (`resolv.conf` has no syntax for one).
    pub dns_port: u16,
}

impl Default for Resolver {
    fn default() -> Self {
        let resolv_conf_path = std::env::var_os(RESOLV_CONF_ENV)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| RESOLV_CONF_PATH.into());
        Resolver { hosts_path: HOSTS_PATH.into(), resolv_conf_path, dns_port: DNS_PORT }
    }
}

impl Resolver {
    /// See [`resolve`].
    pub fn resolve(&self, host: &str, port: u16, timeout: Duration) -> io::Result<Vec<SocketAddr>> {
        let start = Instant::now();
        let deadline = start.checked_add(timeout).or_else(|| start.checked_add(Duration::from_secs(3600)));
        let deadline = deadline.unwrap_or(start);
        let with_port = |ips: Vec<IpAddr>| ips.into_iter().map(|ip| SocketAddr::new(ip, port)).collect();

        if let Some(ip) = parse_ip_literal(host) {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if !is_valid_name(host) {
            return Err(invalid_input(format!("{host:?} is neither an IP address nor a valid host name")));
        }
        let from_hosts = lookup_hosts(&read_config(&self.hosts_path)?, host);
        if !from_hosts.is_empty() {
            return Ok(with_port(from_hosts));
        }
        let conf = ResolvConf::parse(&read_config(&self.resolv_conf_path)?);
        if conf.nameservers.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "cannot resolve {host}: not in {} and no nameserver in {}",
                    self.hosts_path.display(),
                    self.resolv_conf_path.display()
                ),
            ));
        }
        let servers: Vec<SocketAddr> = conf.nameservers.iter().map(|ip| SocketAddr::new(*ip, self.dns_port)).collect();
        let candidates = conf.candidates(host);
        for candidate in &candidates {
            match query_name(&servers, candidate, deadline)? {
                Found::Addrs(addrs) => return Ok(with_port(addrs)),
                Found::NoName => {}
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("cannot resolve {host}: no address for {}", candidates.join(", ")),
        ))
    }
}

fn invalid_input(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// `10.0.0.1`, `::1` or `[::1]`.
fn parse_ip_literal(host: &str) -> Option<IpAddr> {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        None => host.parse().ok(),
    }
}

/// An address in `/etc/hosts` or a `nameserver` line; an IPv6 zone (`fe80::1%eth0`) is dropped.
fn parse_config_ip(word: &str) -> Option<IpAddr> {
    word.split('%').next().and_then(|ip| ip.parse().ok())
}

/// A host name: labels of 1 to 63 letters, digits, `-` or `_`, at most 253 characters, one trailing dot allowed.
fn is_valid_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A configuration file's text; a missing or unreadable file reads as empty, as in musl.
fn read_config(path: &Path) -> io::Result<String> {
    match fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied) => Ok(String::new()),
        Err(e) => Err(io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display()))),
    }
}

/// Every address `/etc/hosts` gives `name`, IPv4 first, without duplicates.
fn lookup_hosts(text: &str, name: &str) -> Vec<IpAddr> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.find('#').map_or(line, |comment| &line[..comment]);
        let mut words = line.split_whitespace();
        let Some(ip) = words.next().and_then(parse_config_ip) else { continue };
        let matches = words.any(|alias| alias.strip_suffix('.').unwrap_or(alias).eq_ignore_ascii_case(name));
        if matches && !found.contains(&ip) {
            found.push(ip);
        }
    }
    found.sort_by_key(|ip| ip.is_ipv6());
    found
}

/// The outcome of asking about one candidate name.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    Addrs(Vec<IpAddr>),
    /// NXDOMAIN, or the name exists without addresses: try the next candidate.
    NoName,
}

/// Asks the servers in turn, [`RETRIES`] + 1 rounds, each try with an equal share of the time left.
fn query_name(servers: &[SocketAddr], name: &str, deadline: Instant) -> io::Result<Found> {
    let tries = servers.len() * (RETRIES + 1);
    let mut last_error = None;
    let mut attempt = 0;
    'rounds: for _round in 0..=RETRIES {
        for server in servers {
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            if left.is_zero() {
                break 'rounds;
            }
            let share = left / u32::try_from(tries - attempt).unwrap_or(u32::MAX).max(1);
            attempt += 1;
            match exchange(*server, name, now + share) {
                Ok(found) => return Ok(found),
                Err(e) => last_error = Some(e),
            }
        }
    }
    let (kind, reason) = match last_error {
        Some(e) => (e.kind(), e.to_string()),
        None => (io::ErrorKind::TimedOut, "timed out".to_owned()),
    };
    let servers = servers.iter().map(|s| s.ip().to_string()).collect::<Vec<_>>().join(", ");
    Err(io::Error::new(kind, format!("no answer about {name} from {servers} in {attempt} tries, the last: {reason}")))
}

/// One try at one server: `A`, then `AAAA` if the name has no `A` record.
fn exchange(server: SocketAddr, name: &str, deadline: Instant) -> io::Result<Found> {
    let local: SocketAddr =
        if server.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = UdpSocket::bind(local)?;
    // Connected: the kernel drops datagrams from anyone else, and reports a closed port as ECONNREFUSED.
    socket.connect(server)?;
    match ask(&socket, name, TYPE_A, deadline)? {
        Reply::NoName => Ok(Found::NoName),
        Reply::Failure(why) => Err(io::Error::other(format!("{server}: {why}"))),
        Reply::Addrs(addrs) if !addrs.is_empty() => Ok(Found::Addrs(addrs)),
        // No A record. The server has answered for the name, so a failed AAAA question is "no address" too.
        Reply::Addrs(_) => match ask(&socket, name, TYPE_AAAA, deadline) {
            Ok(Reply::Addrs(addrs)) if !addrs.is_empty() => Ok(Found::Addrs(addrs)),
            _ => Ok(Found::NoName),
        },
    }
}

/// Sends one question and waits until `deadline` for the reply to it, ignoring every other datagram.
fn ask(socket: &UdpSocket, name: &str, qtype: u16, deadline: Instant) -> io::Result<Reply> {
    let id = random_id();
    let query = build_query(id, name, qtype).ok_or_else(|| invalid_input(format!("{name:?} cannot be encoded")))?;
    socket.send(&query)?;
    let mut buf = vec![0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        socket.set_read_timeout(Some(left))?;
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
            }
            Err(e) => return Err(e),
        };
        if let Some(reply) = buf.get(..n).and_then(|packet| parse_response(packet, id, name, qtype)) {
            return Ok(reply);
        }
    }
}

/// A query id from `/dev/urandom`, or from the standard library's randomly seeded hasher if that is unreadable.
fn random_id() -> u16 {
    let mut bytes = [0u8; 2];
    if fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_ok() {
        return u16::from_be_bytes(bytes);
    }
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    (hasher.finish() & 0xffff) as u16
}

#[cfg(test)]
mod tests;
