//! Pebble: the only charm code that talks to the service manager in a workload container.
//!
//! In the sidecar flavour of the charm (issue 16) each workload container runs Pebble as its PID 1, and the charm
//! container reaches it over a unix socket Juju mounts at `/charm/containers/<name>/pebble.socket`. Through it
//! the charm adds its layer (what services run, with what command and environment), replans, restarts a
//! service, pushes the files the workload reads (configs, and secrets such as the Redis password), and reads the
//! health checks. Nothing else in the charm uses it yet: the podspec flavour does not run Pebble.
//!
//! Built like [`crate::redis::admin`]: charm logic asks [`Pebble`] for typed operations; `Pebble` turns each into
//! one HTTP call on a [`Transport`] ([`http::UnixTransport`] in production, [`fake::FakePebble`] in tests),
//! counts it (`METHOD /v1/path`, never a body), reads Pebble's response envelope, and classifies what went wrong
//! into a [`PebbleError`] that names the container and the call. A pushed file's content never appears in the
//! call log, in an error or in a `Debug` of the request: it may be a password.
//!
//! The request and response shapes are Pebble's own (canonical/pebble, `internals/daemon/api_*.go` and
//! `response.go`): every response is a JSON envelope `{"type": "sync"|"async"|"error", "status-code": …,
//! "status": …, "result": …, "change": "<id>"}`, and an error's result is `{"message": …, "kind": …}`.

#[cfg(any(test, feature = "testing"))]
pub mod fake;
pub mod http;

use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};

/// Where Juju mounts a workload container's Pebble socket in the charm container.
pub fn socket_path(container: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/charm/containers/{container}/pebble.socket"))
}

/// A request body. Its `Debug` shows only its kind and length: a pushed file may hold a password.
#[derive(Clone, PartialEq, Eq)]
pub enum Body {
    /// `application/json`.
    Json(Vec<u8>),
    /// `multipart/form-data` with this boundary (a file push).
    Multipart { boundary: String, bytes: Vec<u8> },
}

impl Body {
    /// The `Content-Type` header the body is sent with.
    pub fn content_type(&self) -> String {
        match self {
            Body::Json(_) => "application/json".to_string(),
            Body::Multipart { boundary, .. } => format!("multipart/form-data; boundary={boundary}"),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match self {
            Body::Json(bytes) | Body::Multipart { bytes, .. } => bytes,
        }
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Json(b) => write!(f, "Body::Json({} bytes)", b.len()),
            Body::Multipart { boundary, bytes } => write!(f, "Body::Multipart({boundary}, {} bytes)", bytes.len()),
        }
    }
}

/// An HTTP response as the transport read it. Its `Debug` shows only the status and the body's length.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Response({}, {} bytes)", self.status, self.body.len())
    }
}

/// Why a transport got no HTTP response. [`Pebble`] adds the container and the call to make a [`PebbleError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// No socket, or nothing listens on it: the container (or its Pebble) is not running.
    NotRunning(String),
    /// No complete response within the call's timeout.
    Timeout(Duration),
    /// Anything else: a broken connection, a response that is not HTTP, one that is too large.
    Protocol(String),
}

/// Sends one HTTP request to a container's Pebble and reads its response, bounded by `timeout`.
pub trait Transport {
    fn request(
        &mut self,
        method: &str,
        path_and_query: &str,
        body: Option<Body>,
        timeout: Duration,
    ) -> Result<Response, TransportError>;
}

/// Which call an error is about: `pebble (<container>): <METHOD> <path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub container: String,
    /// `METHOD /v1/path`, without the query.
    pub request: String,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pebble ({}): {}", self.container, self.request)
    }
}

/// Why a Pebble operation failed. Its `Display` is one line naming the container and the call; no variant holds
/// a request or response body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PebbleError {
    /// The socket is missing or refuses connections: the container is not running (yet).
    NotRunning { call: Call, detail: String },
    /// No answer in time (or Pebble's own wait for a change timed out).
    Timeout { call: Call, after: Duration },
    /// Pebble answered with an error envelope.
    Api { call: Call, status_code: u16, status: String, message: String, kind: String },
    /// A change finished, with an error.
    ChangeFailed { call: Call, change: String, message: String },
    /// Pebble took the push but could not write the file.
    FileRejected { call: Call, path: String, message: String, kind: String },
    /// An answer that is not what Pebble sends.
    Protocol { call: Call, detail: String },
    /// A request the client would not send (a path that would break the request): nothing reached Pebble.
    Invalid { call: Call, detail: String },
}

impl PebbleError {
    pub fn call(&self) -> &Call {
        match self {
            PebbleError::NotRunning { call, .. }
            | PebbleError::Timeout { call, .. }
            | PebbleError::Api { call, .. }
            | PebbleError::ChangeFailed { call, .. }
            | PebbleError::FileRejected { call, .. }
            | PebbleError::Protocol { call, .. }
            | PebbleError::Invalid { call, .. } => call,
        }
    }

    pub fn is_not_running(&self) -> bool {
        matches!(self, PebbleError::NotRunning { .. })
    }
}

impl fmt::Display for PebbleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PebbleError::NotRunning { call, detail } => write!(f, "{call}: not running ({detail})"),
            PebbleError::Timeout { call, after } => write!(f, "{call}: no answer within {after:?}"),
            PebbleError::Api { call, status_code, status, message, kind } => {
                write!(f, "{call}: {status_code}")?;
                if !status.is_empty() {
                    write!(f, " {status}")?;
                }
                write!(f, ": {message}")?;
                if !kind.is_empty() {
                    write!(f, " ({kind})")?;
                }
                Ok(())
            }
            PebbleError::ChangeFailed { call, change, message } => {
                write!(f, "{call}: change {change} failed: {message}")
            }
            PebbleError::FileRejected { call, path, message, kind } => {
                write!(f, "{call}: cannot write {path}: {message}")?;
                if !kind.is_empty() {
                    write!(f, " ({kind})")?;
                }
                Ok(())
            }
            PebbleError::Protocol { call, detail } => write!(f, "{call}: bad response: {detail}"),
            PebbleError::Invalid { call, detail } => write!(f, "{call}: not sent: {detail}"),
        }
    }
}

impl std::error::Error for PebbleError {}

/// Text from Pebble as it goes into an error: one line, at most 500 characters.
fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(500) {
        Some((at, _)) => format!("{}…", &joined[..at]),
        None => joined,
    }
}

/// A check as `GET /v1/checks` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    /// `up` or `down` (or `inactive` for a stopped check).
    pub status: String,
    /// Consecutive failures so far.
    pub failures: u64,
}

/// A finished change as `GET /v1/changes/{id}/wait` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub id: String,
    pub kind: String,
    /// `Done`, or `Hold` for a change with nothing to do.
    pub status: String,
}

/// How long a call may take unless the operation says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How much longer than Pebble's own wait the HTTP call of [`Pebble::wait_change`] may take.
const WAIT_MARGIN: Duration = Duration::from_secs(5);

/// The charm's handle on one container's Pebble, with a log of every call made.
pub struct Pebble {
    container: String,
    transport: Box<dyn Transport>,
    timeout: Duration,
    calls: Vec<String>,
}

impl Pebble {
    pub fn new(container: &str, transport: Box<dyn Transport>) -> Pebble {
        Pebble { container: container.to_string(), transport, timeout: DEFAULT_TIMEOUT, calls: Vec::new() }
    }

    /// The container's Pebble over its socket, [`socket_path`].
    pub fn real(container: &str) -> Pebble {
        Pebble::new(container, Box::new(http::UnixTransport::new(socket_path(container))))
    }

    /// The timeout of every call but [`Pebble::wait_change`]'s (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Pebble {
        self.timeout = timeout;
        self
    }

    pub fn container(&self) -> &str {
        &self.container
    }

    /// One entry per HTTP call: `METHOD /v1/path` (no query, never a body).
    pub fn calls(&self) -> &[String] {
        &self.calls
    }

    /// Makes one call, counts it, and reads the envelope: the `sync`/`async` envelope on success, else the error.
    fn call(
        &mut self,
        method: &str,
        path_and_query: &str,
        body: Option<Body>,
        timeout: Duration,
    ) -> Result<(Call, Value), PebbleError> {
        let path = path_and_query.split('?').next().unwrap_or_default();
        let call = Call { container: self.container.clone(), request: format!("{method} {path}") };
        // A space or a control character (a change id or path from elsewhere) would break the request line.
        if path_and_query.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(PebbleError::Invalid { call, detail: "a path with a space or control character".into() });
        }
        self.calls.push(call.request.clone());
        let response = match self.transport.request(method, path_and_query, body, timeout) {
            Ok(response) => response,
            Err(TransportError::NotRunning(detail)) => return Err(PebbleError::NotRunning { call, detail }),
            Err(TransportError::Timeout(after)) => return Err(PebbleError::Timeout { call, after }),
            Err(TransportError::Protocol(detail)) => return Err(PebbleError::Protocol { call, detail }),
        };
        let envelope: Value = match serde_json::from_slice(&response.body) {
            Ok(v @ Value::Object(_)) => v,
            // The body is not quoted: it is not Pebble's, and could be anything.
            _ => {
                let detail = format!("HTTP {}: not a JSON envelope ({} bytes)", response.status, response.body.len());
                return Err(PebbleError::Protocol { call, detail });
            }
        };
        let kind = envelope.get("type").and_then(Value::as_str).unwrap_or_default();
        if kind == "error" || response.status >= 400 {
            let status_code = envelope
                .get("status-code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(response.status);
            let status = one_line(envelope.get("status").and_then(Value::as_str).unwrap_or_default());
            let result = envelope.get("result");
            let message = one_line(result.and_then(|r| r.get("message")).and_then(Value::as_str).unwrap_or_default());
            let err_kind = one_line(result.and_then(|r| r.get("kind")).and_then(Value::as_str).unwrap_or_default());
            // Pebble's wait for a change ran out (504 Gateway Timeout): the change is still running.
            if status_code == 504 && path.starts_with("/v1/changes/") {
                return Err(PebbleError::Timeout { call, after: timeout.saturating_sub(WAIT_MARGIN) });
            }
            return Err(PebbleError::Api { call, status_code, status, message, kind: err_kind });
        }
        if kind != "sync" && kind != "async" {
            let detail = format!("HTTP {}: envelope type {:?}", response.status, one_line(kind));
            return Err(PebbleError::Protocol { call, detail });
        }
        Ok((call, envelope))
    }

    fn json(value: &Value) -> Option<Body> {
        Some(Body::Json(value.to_string().into_bytes()))
    }

    /// The change id of an `async` envelope.
    fn change_id(call: Call, envelope: &Value) -> Result<String, PebbleError> {
        match envelope.get("change").and_then(Value::as_str) {
            Some(id) if envelope.get("type").and_then(Value::as_str) == Some("async") && !id.is_empty() => {
                Ok(id.to_string())
            }
            _ => Err(PebbleError::Protocol { call, detail: "expected an async response with a change id".into() }),
        }
    }

    /// Adds the layer `yaml` under `label` (`POST /v1/layers`). With `combine`, a layer already there under that
    /// label is combined with it (Pebble's `override: merge|replace` rules); without, that label must be new.
    pub fn add_layer(&mut self, label: &str, yaml: &str, combine: bool) -> Result<(), PebbleError> {
        let body = json!({"action": "add", "combine": combine, "label": label, "format": "yaml", "layer": yaml});
        self.call("POST", "/v1/layers", Self::json(&body), self.timeout).map(|_| ())
    }

    /// The combined plan, as YAML (`GET /v1/plan?format=yaml`).
    pub fn plan_yaml(&mut self) -> Result<String, PebbleError> {
        let (call, envelope) = self.call("GET", "/v1/plan?format=yaml", None, self.timeout)?;
        match envelope.get("result").and_then(Value::as_str) {
            Some(yaml) => Ok(yaml.to_string()),
            None => Err(PebbleError::Protocol { call, detail: "the plan is not a string".into() }),
        }
    }

    /// Starts the services the plan says start, restarting those whose definition changed; returns the change.
    pub fn replan(&mut self) -> Result<String, PebbleError> {
        let body = json!({"action": "replan", "services": []});
        let (call, envelope) = self.call("POST", "/v1/services", Self::json(&body), self.timeout)?;
        Self::change_id(call, &envelope)
    }

    /// Restarts `services` (starting those that are stopped); returns the change.
    pub fn restart(&mut self, services: &[&str]) -> Result<String, PebbleError> {
        let body = json!({"action": "restart", "services": services});
        let (call, envelope) = self.call("POST", "/v1/services", Self::json(&body), self.timeout)?;
        Self::change_id(call, &envelope)
    }

    /// Waits up to `timeout` for change `id` to finish (`GET /v1/changes/{id}/wait`). A change that finished
    /// with an error is [`PebbleError::ChangeFailed`] with Pebble's message; one still running is a timeout.
    pub fn wait_change(&mut self, id: &str, timeout: Duration) -> Result<Change, PebbleError> {
        let wait = if timeout.subsec_millis() == 0 {
            format!("{}s", timeout.as_secs())
        } else {
            format!("{}ms", timeout.as_millis())
        };
        let path = format!("/v1/changes/{id}/wait?timeout={wait}");
        let (call, envelope) = self.call("GET", &path, None, timeout + WAIT_MARGIN)?;
        let result = envelope.get("result").cloned().unwrap_or(Value::Null);
        let text = |key: &str| result.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        let err = text("err");
        if !err.is_empty() {
            return Err(PebbleError::ChangeFailed { call, change: id.to_string(), message: one_line(&err) });
        }
        if result.get("ready").and_then(Value::as_bool) != Some(true) {
            return Err(PebbleError::Timeout { call, after: timeout });
        }
        Ok(Change { id: text("id"), kind: text("kind"), status: text("status") })
    }

    /// Writes `content` to `path` in the container (`POST /v1/files`, multipart), with `permissions` (octal, e.g.
    /// `"600"`), creating missing parent directories if `make_dirs`. The content appears nowhere but the request.
    pub fn push_file(
        &mut self,
        path: &str,
        content: &[u8],
        permissions: &str,
        make_dirs: bool,
    ) -> Result<(), PebbleError> {
        // The path goes into a multipart header too: a line break there would forge one.
        if path.chars().any(char::is_control) {
            let call = Call { container: self.container.clone(), request: "POST /v1/files".into() };
            return Err(PebbleError::Invalid { call, detail: "a file path with a control character".into() });
        }
        let body = http::push_body(path, content, permissions, make_dirs);
        let (call, envelope) = self.call("POST", "/v1/files", Some(body), self.timeout)?;
        let results = envelope.get("result").and_then(Value::as_array).cloned().unwrap_or_default();
        let mine = results.iter().find(|r| r.get("path").and_then(Value::as_str) == Some(path));
        let Some(mine) = mine else {
            return Err(PebbleError::Protocol { call, detail: format!("no result for {path}") });
        };
        if let Some(error) = mine.get("error").filter(|e| !e.is_null()) {
            let text = |key: &str| one_line(error.get(key).and_then(Value::as_str).unwrap_or_default());
            return Err(PebbleError::FileRejected {
                call,
                path: path.to_string(),
                message: text("message"),
                kind: text("kind"),
            });
        }
        Ok(())
    }

    /// Every check's name, status and failure count (`GET /v1/checks`).
    pub fn checks(&mut self) -> Result<Vec<Check>, PebbleError> {
        let (call, envelope) = self.call("GET", "/v1/checks", None, self.timeout)?;
        let Some(items) = envelope.get("result").and_then(Value::as_array) else {
            return Err(PebbleError::Protocol { call, detail: "the checks are not a list".into() });
        };
        let mut checks = Vec::new();
        for item in items {
            let Some(name) = item.get("name").and_then(Value::as_str) else {
                return Err(PebbleError::Protocol { call, detail: "a check without a name".into() });
            };
            checks.push(Check {
                name: name.to_string(),
                status: item.get("status").and_then(Value::as_str).unwrap_or_default().to_string(),
                failures: item.get("failures").and_then(Value::as_u64).unwrap_or(0),
            });
        }
        Ok(checks)
    }
}

#[cfg(test)]
mod tests;
