//! A minimal RESP2 client: one command per connection, bounded in time and in memory.
//!
//! The charm talks to Redis and Sentinel rarely (a status check, asking Sentinel which pod is the primary), so it
//! needs no connection pool, pipelining or RESP3, and no dependency. [`query`] connects, optionally sends `AUTH`,
//! sends one command, reads one reply and closes. Everything it does is bounded:
//!
//! - time: the whole exchange (resolving `host:port`, connect, AUTH, command, reply) must finish within the
//!   `timeout` given; names go through [`super::resolve`], never glibc's `getaddrinfo`, which a static binary
//!   cannot trust;
//! - memory: a reply larger than [`MAX_REPLY_BYTES`] in total, or nested deeper than [`MAX_DEPTH`], is refused;
//! - input: any byte sequence from the server gives a [`Resp`] or an error, never a panic.
//!
//! Error messages name the address and what went wrong, and never contain the password.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};

/// The largest reply [`query`] accepts, counting every byte on the wire.
pub const MAX_REPLY_BYTES: usize = 1024 * 1024;
/// The deepest nesting of arrays [`query`] accepts (Redis itself nests at most a few levels).
pub const MAX_DEPTH: usize = 16;

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    /// `+OK`
    Simple(String),
    /// `-ERR …`: the server refused the command. The text is the whole line, e.g. `NOAUTH Authentication required.`
    Error(String),
    /// `:42`
    Integer(i64),
    /// `$3\r\nfoo`: binary-safe.
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`.
    Null,
    /// `*2\r\n…`
    Array(Vec<Resp>),
}

impl Resp {
    /// The text of a simple string or a UTF-8 bulk string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Resp::Simple(s) => Some(s),
            Resp::Bulk(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// `Err` with the server's message if this is an error reply, else the reply itself.
    pub fn into_result(self) -> Result<Resp> {
        match self {
            Resp::Error(e) => Err(anyhow!("server replied with an error: {e}")),
            other => Ok(other),
        }
    }
}

/// Why a [`session`] got no answer. The text names the address and never contains the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// Nothing listens at the address: the name does not resolve (a pod that is gone has no DNS record) or the
    /// connection is refused (a container that is not running).
    NotListening(String),
    /// The server refused the password (`WRONGPASS`, or `AUTH` sent to a server without one).
    AuthRefused(String),
    /// Anything else: a timeout, a reset, a malformed or oversized reply.
    Failed(String),
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::NotListening(m) | SessionError::AuthRefused(m) | SessionError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for SessionError {}

/// Connects to the Redis or Sentinel at `addr` (`host:port`), authenticates when a password is given, sends every
/// command of `cmds` at once (pipelined) and returns one reply per command, in order.
///
/// An error reply to a command is returned as [`Resp::Error`]: it is an answer. `Err` means no answer; see
/// [`SessionError`] for the kinds. The whole exchange is bounded by `timeout`.
pub fn session<S: AsRef<str>>(
    addr: &str,
    password: Option<&str>,
    cmds: &[Vec<S>],
    timeout: Duration,
) -> Result<Vec<Resp>, SessionError> {
    let failed = |e: anyhow::Error| SessionError::Failed(format!("{e:#}"));
    if cmds.iter().any(|c| c.is_empty()) || cmds.is_empty() {
        return Err(SessionError::Failed(format!("no command to send to {addr}")));
    }
    let deadline = Instant::now() + timeout;
    let mut stream = connect(addr, deadline)?;
    if let Some(password) = password {
        send(&mut stream, &["AUTH", password], deadline)
            .map_err(|e| SessionError::Failed(format!("cannot send AUTH to {addr}: {e}")))?;
        match read_reply(&mut Reader::new(&mut stream, deadline))
            .map_err(|e| failed(e.context(format!("no reply to AUTH from {addr}"))))?
        {
            Resp::Simple(ok) if ok == "OK" => {}
            Resp::Error(e) => return Err(SessionError::AuthRefused(format!("AUTH refused by {addr}: {e}"))),
            other => {
                return Err(SessionError::Failed(format!(
                    "unexpected reply to AUTH from {addr}: {}",
                    describe(&other)
                )));
            }
        }
    }
    let mut out = Vec::new();
    for cmd in cmds {
        let args: Vec<&str> = cmd.iter().map(AsRef::as_ref).collect();
        encode(&mut out, &args);
    }
    write_all(&mut stream, &out, deadline)
        .map_err(|e| SessionError::Failed(format!("cannot send {} to {addr}: {e}", cmds[0][0].as_ref())))?;
    let mut replies = Vec::with_capacity(cmds.len());
    let mut reader = Reader::new(&mut stream, deadline);
    for cmd in cmds {
        let reply = read_reply(&mut reader)
            .map_err(|e| failed(e.context(format!("no reply to {} from {addr}", cmd[0].as_ref()))))?;
        replies.push(reply);
    }
    Ok(replies)
}

/// Sends one command to the Redis or Sentinel at `addr` (`host:port`) and returns its reply.
///
/// With a password, `AUTH <password>` is sent first, and a refused AUTH is an error. An error reply to the command
/// itself is returned as [`Resp::Error`], not as `Err`: it is an answer. `Err` means no answer: the address did not
/// resolve, the connection failed, the time ran out, or the reply was malformed or too large.
pub fn query(addr: &str, password: Option<&str>, cmd: &[&str], timeout: Duration) -> Result<Resp> {
    if cmd.is_empty() {
        bail!("no command to send to {addr}");
    }
    let mut replies = session(addr, password, &[cmd.to_vec()], timeout)?;
    replies.pop().ok_or_else(|| anyhow!("no reply from {addr}"))
}

/// Checks that the server at `addr` answers `PING` with `PONG`.
pub fn ping(addr: &str, password: Option<&str>, timeout: Duration) -> Result<()> {
    match query(addr, password, &["PING"], timeout)? {
        Resp::Simple(pong) if pong == "PONG" => Ok(()),
        other => bail!("{addr} answered PING with {}", describe(&other)),
    }
}

/// Runs `INFO <section>` and returns its text, to read with [`info_field`].
pub fn info(addr: &str, password: Option<&str>, section: &str, timeout: Duration) -> Result<String> {
    match query(addr, password, &["INFO", section], timeout)?.into_result()? {
        Resp::Bulk(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        other => bail!("{addr} answered INFO with {}", describe(&other)),
    }
}

/// The value of `field` in `INFO` output (`role:master` → `master`), or `None` if it is not there.
pub fn info_field<'a>(info_text: &'a str, field: &str) -> Option<&'a str> {
    info_text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.split_once(':').filter(|(name, _)| *name == field).map(|(_, value)| value.trim_end()))
}

/// Asks each Sentinel in turn (`host:port`) where the primary of `master` is, and returns the first answer:
/// `(host, port)`. `None` if no Sentinel answers with an address (all unreachable, or none knows `master`).
/// Each Sentinel gets the whole `timeout`.
pub fn sentinel_primary(
    sentinels: &[String],
    master: &str,
    password: Option<&str>,
    timeout: Duration,
) -> Option<(String, u16)> {
    sentinels.iter().find_map(|sentinel| {
        match query(sentinel, password, &["SENTINEL", "get-master-addr-by-name", master], timeout) {
            Ok(Resp::Array(items)) if items.len() == 2 => {
                let host = items[0].as_str().filter(|h| !h.is_empty())?;
                let port = items[1].as_str()?.parse::<u16>().ok().filter(|p| *p != 0)?;
                Some((host.to_owned(), port))
            }
            _ => None,
        }
    })
}

/// A short description of a reply for error messages (never the contents of a large bulk string).
fn describe(reply: &Resp) -> String {
    match reply {
        Resp::Simple(s) => format!("+{s}"),
        Resp::Error(e) => format!("-{e}"),
        Resp::Integer(i) => format!(":{i}"),
        Resp::Bulk(b) => format!("a bulk string of {} bytes", b.len()),
        Resp::Null => "null".to_owned(),
        Resp::Array(items) => format!("an array of {} items", items.len()),
    }
}

fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() { Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")) } else { Ok(left) }
}

fn connect(addr: &str, deadline: Instant) -> Result<TcpStream, SessionError> {
    let addrs = remaining(deadline).and_then(|left| super::resolve::resolve_host_port(addr, left)).map_err(|e| {
        let text = format!("cannot resolve {addr}: {e}");
        match e.kind() {
            io::ErrorKind::NotFound => SessionError::NotListening(text),
            _ => SessionError::Failed(text),
        }
    })?;
    let mut last_error = None;
    for socket_addr in addrs {
        let attempt = remaining(deadline).and_then(|left| TcpStream::connect_timeout(&socket_addr, left));
        match attempt {
            Ok(stream) => {
                stream.set_nodelay(true).ok();
                return Ok(stream);
            }
            Err(e) => last_error = Some(e),
        }
    }
    match last_error {
        Some(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            Err(SessionError::NotListening(format!("cannot connect to {addr}: {e}")))
        }
        Some(e) => Err(SessionError::Failed(format!("cannot connect to {addr}: {e}"))),
        None => Err(SessionError::NotListening(format!("{addr} resolved to no address"))),
    }
}

/// Writes a command as a RESP array of bulk strings.
fn send(stream: &mut TcpStream, args: &[&str], deadline: Instant) -> io::Result<()> {
    let mut out = Vec::new();
    encode(&mut out, args);
    write_all(stream, &out, deadline)
}

/// Appends a command, as a RESP array of bulk strings, to `out`.
fn encode(out: &mut Vec<u8>, args: &[&str]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

fn write_all(stream: &mut TcpStream, bytes: &[u8], deadline: Instant) -> io::Result<()> {
    stream.set_write_timeout(Some(remaining(deadline)?))?;
    stream.write_all(bytes)
}

/// Reads bytes for the parser, within the deadline and the size budget.
struct Reader<'s, S: Read> {
    source: &'s mut S,
    deadline: Option<Instant>,
    buf: Vec<u8>,
    pos: usize,
    /// Bytes taken from `source` so far.
    total: usize,
}

impl<'s> Reader<'s, TcpStream> {
    fn new(stream: &'s mut TcpStream, deadline: Instant) -> Self {
        Reader { source: stream, deadline: Some(deadline), buf: Vec::new(), pos: 0, total: 0 }
    }
}

impl<S: Read + SetDeadline> Reader<'_, S> {
    /// Reads more bytes into the buffer; `Err` at end of stream, timeout, or when the budget is spent.
    fn fill(&mut self) -> Result<()> {
        if self.total >= MAX_REPLY_BYTES {
            bail!("reply larger than {MAX_REPLY_BYTES} bytes");
        }
        if let Some(deadline) = self.deadline {
            self.source.set_deadline(remaining(deadline)?)?;
        }
        let mut chunk = [0u8; 8192];
        let want = chunk.len().min(MAX_REPLY_BYTES - self.total);
        let n = loop {
            match self.source.read(&mut chunk[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    bail!("timed out waiting for the reply")
                }
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            bail!("connection closed before the reply was complete");
        }
        self.total += n;
        // Drop what the parser has consumed, so the buffer never holds more than the unread part.
        self.buf.drain(..self.pos);
        self.pos = 0;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// One line without its `\r\n`.
    fn line(&mut self) -> Result<Vec<u8>> {
        // Unread bytes already searched without finding CRLF, so a long line is scanned once, not once per read.
        let mut searched: usize = 0;
        loop {
            let start = self.pos + searched.saturating_sub(1);
            if let Some(offset) = self.buf[start..].windows(2).position(|w| w == b"\r\n") {
                let end = start + offset;
                let line = self.buf[self.pos..end].to_vec();
                self.pos = end + 2;
                return Ok(line);
            }
            searched = self.buf.len() - self.pos;
            self.fill()?;
        }
    }

    /// Exactly `n` bytes followed by `\r\n`.
    fn exact(&mut self, n: usize) -> Result<Vec<u8>> {
        let needed = n.checked_add(2).ok_or_else(|| anyhow!("bulk length overflows"))?;
        while self.buf.len() - self.pos < needed {
            self.fill()?;
        }
        let data = self.buf[self.pos..self.pos + n].to_vec();
        if &self.buf[self.pos + n..self.pos + needed] != b"\r\n" {
            bail!("bulk string not terminated by CRLF");
        }
        self.pos += needed;
        Ok(data)
    }
}

/// Lets the reader bound each read by the time left; a no-op for in-memory test input.
trait SetDeadline {
    fn set_deadline(&mut self, left: Duration) -> io::Result<()>;
}

impl SetDeadline for TcpStream {
    fn set_deadline(&mut self, left: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(left))
    }
}

impl SetDeadline for &[u8] {
    fn set_deadline(&mut self, _left: Duration) -> io::Result<()> {
        Ok(())
    }
}

fn read_reply<S: Read + SetDeadline>(reader: &mut Reader<'_, S>) -> Result<Resp> {
    read_value(reader, 0)
}

fn read_value<S: Read + SetDeadline>(reader: &mut Reader<'_, S>, depth: usize) -> Result<Resp> {
    if depth > MAX_DEPTH {
        bail!("reply nested deeper than {MAX_DEPTH} levels");
    }
    let line = reader.line()?;
    let Some((&kind, rest)) = line.split_first() else { bail!("empty reply line") };
    let text = || String::from_utf8_lossy(rest).into_owned();
    match kind {
        b'+' => Ok(Resp::Simple(text())),
        b'-' => Ok(Resp::Error(text())),
        b':' => Ok(Resp::Integer(parse_int(rest)?)),
        b'$' => match parse_int(rest)? {
            -1 => Ok(Resp::Null),
            n if n < 0 => bail!("negative bulk length {n}"),
            n => {
                let n = usize::try_from(n).map_err(|_| anyhow!("bulk length {n} too large"))?;
                if n > MAX_REPLY_BYTES {
                    bail!("bulk string of {n} bytes is larger than {MAX_REPLY_BYTES} bytes");
                }
                Ok(Resp::Bulk(reader.exact(n)?))
            }
        },
        b'*' => match parse_int(rest)? {
            -1 => Ok(Resp::Null),
            n if n < 0 => bail!("negative array length {n}"),
            n => {
                // Every element takes at least 3 bytes on the wire, so the size budget bounds this loop; the
                // vector grows only as elements really arrive.
                let n = usize::try_from(n).map_err(|_| anyhow!("array length {n} too large"))?;
                if n > MAX_REPLY_BYTES / 3 {
                    bail!("array of {n} items cannot fit in {MAX_REPLY_BYTES} bytes");
                }
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(read_value(reader, depth + 1)?);
                }
                Ok(Resp::Array(items))
            }
        },
        other => bail!("unknown reply type byte 0x{other:02x}"),
    }
}

fn parse_int(digits: &[u8]) -> Result<i64> {
    std::str::from_utf8(digits)
        .ok()
        .filter(|s| !s.is_empty() && !s.starts_with('+'))
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| anyhow!("not an integer: {:?}", String::from_utf8_lossy(&digits[..digits.len().min(32)])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::process::{Child, Command, Stdio};

    const T: Duration = Duration::from_secs(5);

    fn parse(bytes: &[u8]) -> Result<Resp> {
        let mut source = bytes;
        let mut reader = Reader { source: &mut source, deadline: None, buf: Vec::new(), pos: 0, total: 0 };
        read_reply(&mut reader)
    }

    // ---- Parsing --------------------------------------------------------------------------------------------

    #[test]
    fn every_reply_type_parses() {
        assert_eq!(parse(b"+OK\r\n").unwrap(), Resp::Simple("OK".into()));
        assert_eq!(parse(b"-ERR unknown\r\n").unwrap(), Resp::Error("ERR unknown".into()));
        assert_eq!(parse(b":42\r\n").unwrap(), Resp::Integer(42));
        assert_eq!(parse(b":-7\r\n").unwrap(), Resp::Integer(-7));
        assert_eq!(parse(b"$3\r\nfoo\r\n").unwrap(), Resp::Bulk(b"foo".to_vec()));
        assert_eq!(parse(b"$0\r\n\r\n").unwrap(), Resp::Bulk(Vec::new()));
        assert_eq!(parse(b"$4\r\na\r\nb\r\n").unwrap(), Resp::Bulk(b"a\r\nb".to_vec()), "binary safe");
        assert_eq!(parse(b"$-1\r\n").unwrap(), Resp::Null);
        assert_eq!(parse(b"*-1\r\n").unwrap(), Resp::Null);
        assert_eq!(parse(b"*0\r\n").unwrap(), Resp::Array(vec![]));
        assert_eq!(
            parse(b"*3\r\n$1\r\na\r\n:1\r\n*1\r\n$-1\r\n").unwrap(),
            Resp::Array(vec![Resp::Bulk(b"a".to_vec()), Resp::Integer(1), Resp::Array(vec![Resp::Null])])
        );
    }

    #[test]
    fn garbage_gives_errors_not_panics() {
        let garbage: &[&[u8]] = &[
            b"",
            b"\r\n",
            b"?what\r\n",
            b"+no end",
            b":\r\n",
            b":abc\r\n",
            b":+1\r\n",
            b":99999999999999999999\r\n",
            b"$\r\n",
            b"$-2\r\n",
            b"$5\r\nab\r\n",
            b"$2\r\nabcd",
            b"$3\r\nabcXY",
            b"$9223372036854775807\r\n",
            b"$2000000\r\n",
            b"*-5\r\n",
            b"*2\r\n+a\r\n",
            b"*9223372036854775807\r\n",
            b"*1000000000\r\n",
            b"\xff\xfe\r\n",
        ];
        for bytes in garbage {
            assert!(parse(bytes).is_err(), "{:?} parsed", String::from_utf8_lossy(bytes));
        }
        // Odd but well-formed bytes inside strings are kept, not rejected.
        assert_eq!(parse(b"+\xff\r\n").unwrap(), Resp::Simple("\u{fffd}".into()));
    }

    /// Random byte strings built from RESP fragments: the parser must return, never panic.
    #[test]
    fn random_fragments_never_panic() {
        let fragments: &[&[u8]] = &[
            b"*", b"$", b"+", b"-", b":", b"\r\n", b"\r", b"\n", b"-1", b"0", b"1", b"2", b"99", b"abc", b"\xff", b"\0",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 12) as usize;
            let mut input = Vec::new();
            for _ in 0..len {
                input.extend_from_slice(fragments[(next() % fragments.len() as u64) as usize]);
            }
            let _ = parse(&input);
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut deep = b"*1\r\n".repeat(MAX_DEPTH + 5);
        deep.extend_from_slice(b":1\r\n");
        assert!(parse(&deep).unwrap_err().to_string().contains("nested deeper"));
        let mut ok = b"*1\r\n".repeat(MAX_DEPTH);
        ok.extend_from_slice(b":1\r\n");
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn oversized_replies_are_refused() {
        let mut big = format!("${}\r\n", MAX_REPLY_BYTES).into_bytes();
        big.extend(std::iter::repeat_n(b'x', MAX_REPLY_BYTES));
        big.extend_from_slice(b"\r\n");
        assert!(parse(&big).is_err(), "a bulk string over the budget must be refused");
        // Many small items adding up to more than the budget.
        let mut many = b"*300000\r\n".to_vec();
        many.extend(b"+abc\r\n".repeat(300_000));
        assert!(parse(&many).unwrap_err().to_string().contains("larger than"));
        // An endless line.
        assert!(parse(&vec![b'+'; MAX_REPLY_BYTES + 10]).is_err());
    }

    #[test]
    fn info_field_reads_info_text() {
        let info = "# Replication\r\nrole:slave\r\nmaster_host:redis-0.redis-endpoints\r\nmaster_port:6379\r\n\
                    master_link_status:up\r\n# Other\r\nx:a:b\r\n";
        assert_eq!(info_field(info, "role"), Some("slave"));
        assert_eq!(info_field(info, "master_host"), Some("redis-0.redis-endpoints"));
        assert_eq!(info_field(info, "master_link_status"), Some("up"));
        assert_eq!(info_field(info, "x"), Some("a:b"));
        assert_eq!(info_field(info, "master"), None);
        assert_eq!(info_field(info, "# Replication"), None);
        assert_eq!(info_field("", "role"), None);
    }

    // ---- Against junk servers -------------------------------------------------------------------------------

    /// A server that answers every connection with `reply` (after reading a little), then closes.
    fn junk_server(reply: Vec<u8>) -> (String, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = std::thread::spawn(move || {
            if let Ok((mut conn, _)) = listener.accept() {
                conn.set_read_timeout(Some(Duration::from_secs(2))).ok();
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(&reply);
            }
        });
        (addr, handle)
    }

    #[test]
    fn junk_servers_give_errors() {
        for reply in [b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(), b"$10\r\nshort".to_vec(), vec![0u8; 64], Vec::new()]
        {
            let (addr, handle) = junk_server(reply.clone());
            let result = query(&addr, None, &["PING"], T);
            assert!(result.is_err(), "{:?} gave {result:?}", String::from_utf8_lossy(&reply));
            handle.join().unwrap();
        }
    }

    #[test]
    fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        // Accepts (the kernel does, through the backlog) but never answers.
        let err = query(&addr, None, &["PING"], Duration::from_millis(300)).unwrap_err();
        assert!(format!("{err:#}").contains("timed out"), "{err:#}");
        drop(listener);
    }

    #[test]
    fn a_server_flooding_bytes_is_cut_off() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = std::thread::spawn(move || {
            if let Ok((mut conn, _)) = listener.accept() {
                // Read the request first: closing a socket with unread input makes the kernel send a reset,
                // which could reach the client before it has read past the limit.
                let mut request = [0u8; 256];
                let _ = conn.read(&mut request);
                let line = [b'+'; 65536];
                for _ in 0..64 {
                    if conn.write_all(&line).is_err() {
                        break;
                    }
                }
                // Stay until the client hangs up.
                let _ = conn.read(&mut request);
            }
        });
        let err = query(&addr, None, &["PING"], T).unwrap_err();
        assert!(format!("{err:#}").contains("larger than"), "{err:#}");
        handle.join().unwrap();
    }

    #[test]
    fn refused_auth_is_an_error_without_the_password() {
        let (addr, handle) = junk_server(b"-WRONGPASS invalid username-password pair\r\n".to_vec());
        let err = query(&addr, Some("s3cret-pa55word-xyz"), &["PING"], T).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("AUTH refused") && !text.contains("s3cret"), "{text}");
        handle.join().unwrap();
    }

    #[test]
    fn unreachable_addresses_are_errors() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        assert!(query(&format!("127.0.0.1:{port}"), None, &["PING"], T).is_err());
        assert!(query("no-port-here", None, &["PING"], T).is_err());
        assert!(query("127.0.0.1:1", None, &[], T).is_err());
        assert_eq!(sentinel_primary(&[format!("127.0.0.1:{port}"), "bad".into()], "redis", None, T), None);
    }

    // ---- Against real redis-server and Sentinel -------------------------------------------------------------

    /// Kills the process when the test ends, even if it fails.
    struct KillOnDrop(Child);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn free_port() -> u16 {
        TcpListener::bind("0.0.0.0:0").unwrap().local_addr().unwrap().port()
    }

    fn start(args: &[&str]) -> KillOnDrop {
        let child = Command::new("redis-server")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("this test needs redis-server 7 on PATH");
        KillOnDrop(child)
    }

    fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !ok() {
            assert!(Instant::now() < deadline, "gave up after 15 s waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn talks_to_a_real_redis_server_with_a_password() {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let pw = "resp-test-password-0123";
        let _server = start(&["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--requirepass", pw]);
        wait_until("redis-server", || ping(&addr, Some(pw), T).is_ok());

        assert!(matches!(query(&addr, None, &["GET", "k"], T).unwrap(), Resp::Error(e) if e.starts_with("NOAUTH")));
        let wrong = format!("{:#}", query(&addr, Some("not-the-password-xyz"), &["PING"], T).unwrap_err());
        assert!(wrong.contains("AUTH refused") && !wrong.contains("not-the-password"), "{wrong}");

        let q = |cmd: &[&str]| query(&addr, Some(pw), cmd, T).unwrap();
        assert_eq!(q(&["SET", "k", "v\r\nwith crlf"]), Resp::Simple("OK".into()));
        assert_eq!(q(&["GET", "k"]), Resp::Bulk(b"v\r\nwith crlf".to_vec()));
        assert_eq!(q(&["GET", "missing"]), Resp::Null);
        assert_eq!(q(&["INCR", "n"]), Resp::Integer(1));
        assert_eq!(q(&["RPUSH", "l", "a", "b"]), Resp::Integer(2));
        assert_eq!(
            q(&["LRANGE", "l", "0", "-1"]),
            Resp::Array(vec![Resp::Bulk(b"a".to_vec()), Resp::Bulk(b"b".to_vec())])
        );
        assert!(matches!(q(&["NOSUCHCOMMAND"]), Resp::Error(e) if e.starts_with("ERR unknown command")));
        assert!(q(&["NOSUCHCOMMAND"]).into_result().is_err());

        let replication = info(&addr, Some(pw), "replication", T).unwrap();
        assert_eq!(info_field(&replication, "role"), Some("master"));
        // A 600 kB value is within the budget.
        let big = "x".repeat(600_000);
        q(&["SET", "big", &big]);
        assert_eq!(q(&["GET", "big"]).as_str(), Some(big.as_str()));
        // A 2 MB value is not: refused, not buffered.
        let huge = "y".repeat(2_000_000);
        q(&["SET", "huge", &huge]);
        assert!(query(&addr, Some(pw), &["GET", "huge"], T).is_err());
    }

    #[test]
    fn asks_a_real_sentinel_for_the_primary() {
        let redis_port = free_port();
        let sentinel_port = free_port();
        let pw = "resp-sentinel-password-0123";
        let dir = std::env::temp_dir().join(format!("redis-k8s-resp-sentinel-{}-{sentinel_port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {redis_port} 1\n\
                 sentinel auth-pass mymaster {pw}\nrequirepass {pw}\n",
                dir.display()
            ),
        )
        .unwrap();
        let _redis =
            start(&["--port", &redis_port.to_string(), "--bind", "127.0.0.1", "--save", "", "--requirepass", pw]);
        let _sentinel = start(&[conf.to_str().unwrap(), "--sentinel"]);
        let sentinel = format!("127.0.0.1:{sentinel_port}");
        wait_until("redis-sentinel", || ping(&sentinel, Some(pw), T).is_ok());

        let dead = format!("127.0.0.1:{}", free_port());
        let sentinels = vec![dead, sentinel.clone()];
        assert_eq!(sentinel_primary(&sentinels, "mymaster", Some(pw), T), Some(("127.0.0.1".to_owned(), redis_port)));
        assert_eq!(sentinel_primary(&sentinels, "unknown-master", Some(pw), T), None);
        assert_eq!(sentinel_primary(&sentinels, "mymaster", None, T), None, "Sentinel requires the password");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
