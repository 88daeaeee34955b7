//! The production [`Transport`]: HTTP/1.1 over a container's Pebble socket, with the standard library only.
//!
//! One connection per call (`Connection: close`), so there is no pooling to get wrong. Every read and write is
//! bounded by what is left of the call's timeout, and the response by [`MAX_RESPONSE`] (its headers by
//! [`MAX_HEADERS`]); the body is read by `Content-Length`, `Transfer-Encoding: chunked`, or to the end of the
//! connection. Also here: the multipart body of a file push, [`push_body`], laid out as Pebble's own Go client
//! lays it out (`client/files.go`).

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Body, Response, Transport, TransportError};

/// The largest response body read; a larger one is a [`TransportError::Protocol`].
pub const MAX_RESPONSE: usize = 16 << 20;
/// The largest status line and headers read.
pub const MAX_HEADERS: usize = 64 << 10;

/// HTTP over the unix socket at a path.
#[derive(Debug, Clone)]
pub struct UnixTransport {
    socket: PathBuf,
    max_response: usize,
}

impl UnixTransport {
    pub fn new(socket: PathBuf) -> UnixTransport {
        UnixTransport { socket, max_response: MAX_RESPONSE }
    }

    /// A smaller (or larger) bound on the response body than [`MAX_RESPONSE`].
    pub fn with_max_response(mut self, max: usize) -> UnixTransport {
        self.max_response = max;
        self
    }
}

impl Transport for UnixTransport {
    fn request(
        &mut self,
        method: &str,
        path_and_query: &str,
        body: Option<Body>,
        timeout: Duration,
    ) -> Result<Response, TransportError> {
        let stream = match UnixStream::connect(&self.socket) {
            Ok(stream) => stream,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
                return Err(TransportError::NotRunning(format!("{}: {e}", self.socket.display())));
            }
            Err(e) => {
                return Err(TransportError::Protocol(format!("cannot connect to {}: {e}", self.socket.display())));
            }
        };
        let mut conn = Conn { stream, deadline: Instant::now() + timeout, timeout, buf: Vec::new(), pos: 0 };
        let mut head = format!("{method} {path_and_query} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        if let Some(body) = &body {
            head.push_str(&format!(
                "Content-Type: {}\r\nContent-Length: {}\r\n",
                body.content_type(),
                body.bytes().len()
            ));
        }
        head.push_str("\r\n");
        conn.write_all(head.as_bytes())?;
        if let Some(body) = &body {
            conn.write_all(body.bytes())?;
        }
        read_response(&mut conn, self.max_response)
    }
}

/// One connection, with the call's deadline and what has been read but not yet consumed.
struct Conn {
    stream: UnixStream,
    deadline: Instant,
    timeout: Duration,
    buf: Vec<u8>,
    pos: usize,
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

impl Conn {
    /// What is left of the deadline, or the timeout error.
    fn remaining(&self) -> Result<Duration, TransportError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() { Err(TransportError::Timeout(self.timeout)) } else { Ok(left) }
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), TransportError> {
        while !bytes.is_empty() {
            let left = self.remaining()?;
            let set = self.stream.set_write_timeout(Some(left));
            set.map_err(|e| TransportError::Protocol(format!("cannot set a write timeout: {e}")))?;
            match self.stream.write(bytes) {
                Ok(0) => return Err(TransportError::Protocol("the connection closed while sending".into())),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(TransportError::Timeout(self.timeout)),
                Err(e) => return Err(TransportError::Protocol(format!("cannot send the request: {e}"))),
            }
        }
        Ok(())
    }

    /// Reads more; `Ok(0)` at the end of the connection.
    fn fill(&mut self) -> Result<usize, TransportError> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 16 << 10];
        loop {
            let left = self.remaining()?;
            let set = self.stream.set_read_timeout(Some(left));
            set.map_err(|e| TransportError::Protocol(format!("cannot set a read timeout: {e}")))?;
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(TransportError::Timeout(self.timeout)),
                Err(e) => return Err(TransportError::Protocol(format!("cannot read the response: {e}"))),
            }
        }
    }

    fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// One line without its `\r\n` (or `\n`), counted against `budget`.
    fn line(&mut self, budget: &mut usize) -> Result<String, TransportError> {
        loop {
            if let Some(end) = self.buffered().iter().position(|&b| b == b'\n') {
                if end + 1 > *budget {
                    break;
                }
                *budget -= end + 1;
                let line = &self.buf[self.pos..self.pos + end];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let text = String::from_utf8_lossy(line).into_owned();
                self.pos += end + 1;
                return Ok(text);
            }
            if self.buffered().len() > *budget {
                break;
            }
            if self.fill()? == 0 {
                return Err(TransportError::Protocol("the connection closed in the middle of the headers".into()));
            }
        }
        Err(TransportError::Protocol(format!("status line and headers larger than {MAX_HEADERS} bytes")))
    }

    /// Exactly `n` bytes.
    fn take(&mut self, n: usize) -> Result<Vec<u8>, TransportError> {
        while self.buffered().len() < n {
            if self.fill()? == 0 {
                let got = self.buffered().len();
                return Err(TransportError::Protocol(format!("the connection closed after {got} of {n} body bytes")));
            }
        }
        let bytes = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(bytes)
    }
}

fn too_large(max: usize) -> TransportError {
    TransportError::Protocol(format!("response larger than {max} bytes"))
}

/// Reads the status line, the headers and the body.
fn read_response(conn: &mut Conn, max: usize) -> Result<Response, TransportError> {
    let mut budget = MAX_HEADERS;
    let status_line = conn.line(&mut budget)?;
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let status = match code.parse::<u16>() {
        Ok(code) if version.starts_with("HTTP/1.") && (100..600).contains(&code) => code,
        _ => return Err(TransportError::Protocol("not an HTTP/1.x status line".into())),
    };
    let (mut length, mut chunked) = (None, false);
    loop {
        let line = conn.line(&mut budget)?;
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(TransportError::Protocol("a header line without a colon".into()));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            let n = value.parse::<usize>();
            length = Some(n.map_err(|_| TransportError::Protocol("a Content-Length that is not a number".into()))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().split(',').any(|v| v.trim() == "chunked");
        }
    }
    let body = if chunked {
        read_chunked(conn, max)?
    } else if let Some(n) = length {
        if n > max {
            return Err(too_large(max));
        }
        conn.take(n)?
    } else {
        while conn.buffered().len() <= max {
            if conn.fill()? == 0 {
                break;
            }
        }
        if conn.buffered().len() > max {
            return Err(too_large(max));
        }
        let body = conn.buffered().to_vec();
        conn.pos = conn.buf.len();
        body
    };
    Ok(Response { status, body })
}

/// A `Transfer-Encoding: chunked` body, trailers skipped.
fn read_chunked(conn: &mut Conn, max: usize) -> Result<Vec<u8>, TransportError> {
    let mut body = Vec::new();
    let mut budget = MAX_HEADERS;
    loop {
        let line = conn.line(&mut budget)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16)
            .map_err(|_| TransportError::Protocol("a chunk size that is not hexadecimal".into()))?;
        if size == 0 {
            break;
        }
        if body.len().saturating_add(size) > max {
            return Err(too_large(max));
        }
        body.extend_from_slice(&conn.take(size)?);
        if !conn.line(&mut budget)?.is_empty() {
            return Err(TransportError::Protocol("a chunk longer than its size".into()));
        }
    }
    // Trailers, to the blank line; a peer that just closes after the last chunk is forgiven.
    loop {
        match conn.line(&mut budget) {
            Ok(line) if !line.is_empty() => {}
            _ => break,
        }
    }
    Ok(body)
}

/// Escapes a path for the `filename="…"` of a Content-Disposition, as Go's client does.
fn escape_quotes(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A boundary that does not occur in `content`.
fn boundary_for(content: &[u8]) -> String {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mut n = seed ^ u128::from(std::process::id());
    loop {
        let boundary = format!("pebble-{:032x}", n);
        if !content.windows(boundary.len()).any(|w| w == boundary.as_bytes()) {
            return boundary;
        }
        n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    }
}

/// The multipart body of `POST /v1/files` writing one file: a `request` part
/// `{"action": "write", "files": [{"path", "make-dirs", "permissions"}]}`, then a `files` part with the content.
pub fn push_body(path: &str, content: &[u8], permissions: &str, make_dirs: bool) -> Body {
    let boundary = boundary_for(content);
    let request = serde_json::json!({
        "action": "write",
        "files": [{"path": path, "make-dirs": make_dirs, "permissions": permissions}],
    });
    let mut bytes = Vec::with_capacity(content.len() + 512);
    bytes.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Type: application/json\r\nContent-Disposition: form-data; name=\"request\"\r\n\r\n\
             {request}\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\
             Content-Disposition: form-data; name=\"files\"; filename=\"{}\"\r\n\r\n",
            escape_quotes(path)
        )
        .as_bytes(),
    );
    bytes.extend_from_slice(content);
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Body::Multipart { boundary, bytes }
}

#[cfg(test)]
mod tests;
