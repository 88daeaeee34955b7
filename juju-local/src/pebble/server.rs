//! The HTTP API over the unix socket: HTTP/1.1, one request per connection (the answer says
//! `Connection: close`), standard library only, and Pebble's JSON envelope (canonical/pebble
//! `internals/daemon/response.go`): `{"type": "sync"|"async"|"error", "status-code", "status", "result",
//! "change"}`, an error's result being `{"message", "kind"?}`, with the status codes Pebble's handlers use
//! (400 for a bad request, 404 for an unknown change or route, 405 for a method a route lacks, 504 when a
//! change's wait times out).
//!
//! Routes (`internals/daemon/api.go`): `GET /v1/system-info`, `GET /v1/health`, `GET /v1/changes`,
//! `GET /v1/changes/{id}`, `GET /v1/changes/{id}/wait`, `GET|POST /v1/services`, `GET /v1/plan`,
//! `POST /v1/layers`, `POST /v1/files` (multipart write), `GET /v1/checks`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::daemon::Daemon;
use super::golib::{parse_duration, quote};
use super::{check, files, layer, service};

/// The largest request body read (file pushes included).
const MAX_BODY: usize = 256 << 20;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A response: HTTP status and the JSON envelope.
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

fn status_text(code: u16) -> &'static str {
    match code {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// `SyncResponse`.
pub fn sync(result: Value) -> Reply {
    sync_with_status(200, result)
}

fn sync_with_status(status: u16, result: Value) -> Reply {
    let mut body = json!({"type": "sync", "status-code": status, "status": status_text(status)});
    if !result.is_null() {
        body["result"] = result;
    }
    Reply { status, body }
}

/// `AsyncResponse(nil, change)`.
pub fn async_change(change: &str) -> Reply {
    Reply { status: 202, body: json!({"type": "async", "status-code": 202, "status": "Accepted", "change": change}) }
}

/// `ErrorResponse`.
pub fn error(status: u16, message: &str) -> Reply {
    error_kind(status, message, "")
}

fn error_kind(status: u16, message: &str, kind: &str) -> Reply {
    let mut result = json!({"message": message});
    if !kind.is_empty() {
        result["kind"] = json!(kind);
    }
    Reply {
        status,
        body: json!({"type": "error", "status-code": status, "status": status_text(status), "result": result}),
    }
}

/// A parsed request.
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Request {
    fn param(&self, key: &str) -> String {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default()
    }

    /// `strutil.MultiCommaSeparatedList`: every `key=` value, split on commas, blanks dropped.
    fn list(&self, key: &str) -> Vec<String> {
        self.query
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()).collect::<Vec<_>>())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one request from `stream`.
fn read_request(stream: &UnixStream) -> Result<Request, String> {
    stream.set_read_timeout(Some(READ_TIMEOUT)).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or_default().to_string(), words.next().unwrap_or_default());
    if method.is_empty() || !target.starts_with('/') {
        return Err("malformed request line".into());
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let (mut length, mut chunked, mut content_type) = (0usize, false, String::new());
    let mut header_bytes = 0;
    loop {
        let mut h = String::new();
        let n = reader.read_line(&mut h).map_err(|e| e.to_string())?;
        header_bytes += n;
        if n == 0 || header_bytes > 64 << 10 {
            return Err("malformed headers".into());
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let Some((name, value)) = h.split_once(':') else { continue };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => length = value.parse().map_err(|_| "bad Content-Length")?,
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "content-type" => content_type = value.to_string(),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).map_err(|e| e.to_string())?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or_default(), 16)
                .map_err(|_| "bad chunk size")?;
            if n == 0 {
                break;
            }
            if body.len() + n > MAX_BODY {
                return Err("request too large".into());
            }
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            body.extend_from_slice(&chunk[..n]);
        }
    } else {
        if length > MAX_BODY {
            return Err("request too large".into());
        }
        body.resize(length, 0);
        reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    }
    Ok(Request { method, path: path.to_string(), query, content_type, body })
}

/// Serves one connection.
pub fn serve(d: Arc<Daemon>, mut stream: UnixStream) {
    let reply = match read_request(&stream) {
        Ok(req) => route(&d, &req),
        Err(e) => error(400, &format!("cannot read request: {e}")),
    };
    let body = reply.body.to_string();
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        status_text(reply.status),
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body.as_bytes()));
}

/// JSON shapes a payload field may have (Go's `json.Decoder` into the handler's struct).
#[derive(Clone, Copy)]
enum Shape {
    Str,
    Bool,
    Strings,
}

/// Decodes a JSON object as Go's decoder would into the handler's payload struct: a field of the wrong type is
/// an error (`null` is the zero value), unknown fields are ignored.
fn decode(body: &[u8], what: &str, fields: &[(&str, Shape)]) -> Result<Value, Reply> {
    let value = match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(v) => return Err(error(400, &format!("{what}: json: cannot unmarshal {} into Go value", json_kind(&v)))),
        Err(e) => return Err(error(400, &format!("{what}: {e}"))),
    };
    for (name, shape) in fields {
        let Some(v) = value.get(*name).filter(|v| !v.is_null()) else { continue };
        let ok = match shape {
            Shape::Str => v.is_string(),
            Shape::Bool => v.is_boolean(),
            Shape::Strings => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        };
        if !ok {
            let ty = match shape {
                Shape::Str => "string",
                Shape::Bool => "bool",
                Shape::Strings => "[]string",
            };
            let message =
                format!("{what}: json: cannot unmarshal {} into Go struct field .{name} of type {ty}", json_kind(v));
            return Err(error(400, &message));
        }
    }
    Ok(value)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Dispatches a request to its handler.
pub fn route(d: &Arc<Daemon>, req: &Request) -> Reply {
    let m = req.method.as_str();
    let segments: Vec<&str> = req.path.trim_end_matches('/').split('/').collect();
    let allowed = |ok: &[&str]| -> Option<Reply> {
        if ok.contains(&m) { None } else { Some(error(405, &format!("method {} not allowed", quote(m)))) }
    };
    match segments.as_slice() {
        ["", "v1", "system-info"] => allowed(&["GET"]).unwrap_or_else(|| {
            sync(json!({"version": concat!("juju-local-", env!("CARGO_PKG_VERSION")), "boot-id": ""}))
        }),
        ["", "v1", "health"] => allowed(&["GET"]).unwrap_or_else(|| health(d, req)),
        ["", "v1", "changes"] => allowed(&["GET"]).unwrap_or_else(|| changes(d, req)),
        ["", "v1", "changes", id] => allowed(&["GET"]).unwrap_or_else(|| {
            let st = d.lock();
            match st.changes.get(id) {
                Some(c) => sync(c.to_json()),
                None => error(404, &format!("cannot find change with id {}", quote(id))),
            }
        }),
        ["", "v1", "changes", id, "wait"] => allowed(&["GET"]).unwrap_or_else(|| wait_change(d, id, req)),
        ["", "v1", "services"] => match m {
            "GET" => sync(service::services_json(&d.lock(), &req.list("names"))),
            "POST" => post_services(d, req),
            _ => error(405, &format!("method {} not allowed", quote(m))),
        },
        ["", "v1", "plan"] => allowed(&["GET"]).unwrap_or_else(|| {
            let format = req.param("format");
            if format != "yaml" {
                return error(400, &format!("invalid format {}", quote(&format)));
            }
            sync(json!(d.lock().plan.to_yaml()))
        }),
        ["", "v1", "layers"] => allowed(&["POST"]).unwrap_or_else(|| post_layers(d, req)),
        ["", "v1", "files"] => allowed(&["POST"]).unwrap_or_else(|| {
            let answer = files::boundary(&req.content_type).and_then(|b| files::write_files(&req.body, &b));
            match answer {
                Ok(result) => sync(result),
                Err(message) => error(400, &message),
            }
        }),
        ["", "v1", "checks"] => allowed(&["GET"]).unwrap_or_else(|| {
            let level = req.param("level");
            if !matches!(level.as_str(), "" | "alive" | "ready") {
                return error(400, r#"level must be "alive" or "ready""#);
            }
            sync(check::checks_json(&d.lock(), &level, &req.list("names")))
        }),
        _ => error(404, "not found"),
    }
}

/// `v1Health`: a sync response, 502 when unhealthy.
fn health(d: &Arc<Daemon>, req: &Request) -> Reply {
    let level = req.param("level");
    if !matches!(level.as_str(), "" | "alive" | "ready") {
        return error(400, r#"level must be "alive" or "ready""#);
    }
    let ok = check::healthy(&d.lock(), &level, &req.list("names"));
    sync_with_status(if ok { 200 } else { 502 }, json!({"healthy": ok}))
}

/// `v1GetChanges`.
fn changes(d: &Arc<Daemon>, req: &Request) -> Reply {
    let select = req.param("select");
    let filter: fn(bool) -> bool = match select.as_str() {
        "" | "in-progress" => |ready| !ready,
        "all" => |_| true,
        "ready" => |ready| ready,
        _ => return error(400, "select should be one of: all,in-progress,ready"),
    };
    if !req.param("for").is_empty() {
        return error(400, "juju-local's Pebble does not filter changes by service (\"for\")");
    }
    let st = d.lock();
    sync(Value::Array(st.changes.list.iter().filter(|c| filter(c.ready())).map(|c| c.to_json()).collect()))
}

/// `v1GetChangeWait`: waits for the change to be ready, at most `timeout` when given (504 after it).
fn wait_change(d: &Arc<Daemon>, id: &str, req: &Request) -> Reply {
    if d.lock().changes.get(id).is_none() {
        return error(404, &format!("cannot find change with id {}", quote(id)));
    }
    let text = req.param("timeout");
    let timeout = if text.is_empty() {
        None
    } else {
        match parse_duration(&text) {
            Ok(t) => Some(t).filter(|t| !t.is_zero()),
            Err(e) => return error(400, &format!("invalid timeout: {e}")),
        }
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    let st = d.lock();
    let (st, ready) = d.wait_until(st, deadline, |st| st.changes.get(id).is_some_and(|c| c.ready()));
    if !ready {
        let t = super::golib::format_duration(timeout.unwrap_or_default());
        return error(504, &format!("timed out waiting for change after {t}"));
    }
    sync(st.changes.get(id).expect("exists").to_json())
}

/// `v1PostLayers`.
fn post_layers(d: &Arc<Daemon>, req: &Request) -> Reply {
    let fields = [
        ("action", Shape::Str),
        ("combine", Shape::Bool),
        ("inner", Shape::Bool),
        ("label", Shape::Str),
        ("format", Shape::Str),
        ("layer", Shape::Str),
    ];
    let payload = match decode(&req.body, "cannot decode request body", &fields) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let text = |k: &str| payload.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let (action, label, format, yaml) = (text("action"), text("label"), text("format"), text("layer"));
    let combine = payload.get("combine").and_then(Value::as_bool).unwrap_or(false);
    if action != "add" {
        return error(400, &format!("invalid action {}", quote(&action)));
    }
    if label.is_empty() {
        return error(400, "label must be set");
    }
    if format != "yaml" {
        return error(400, &format!("invalid format {}", quote(&format)));
    }
    let layer = match layer::parse_layer(0, &label, &yaml) {
        Ok(l) => l,
        Err(e) => return error(400, &format!("cannot parse layer YAML: {e}")),
    };
    let mut st = d.lock();
    let updated = if combine { st.plan.combine_layer(layer) } else { st.plan.append_layer(layer) };
    match updated {
        Ok(plan) => {
            st.plan = plan;
            check::plan_changed(d, &mut st);
            drop(st);
            d.notify();
            sync(json!(true))
        }
        Err(e) => error(400, &e),
    }
}

/// `v1PostServices`.
fn post_services(d: &Arc<Daemon>, req: &Request) -> Reply {
    let fields = [("action", Shape::Str), ("services", Shape::Strings)];
    let payload = match decode(&req.body, "cannot decode data from request body", &fields) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let action = payload.get("action").and_then(Value::as_str).unwrap_or_default().to_string();
    let mut names: Vec<String> = payload
        .get("services")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let mut st = d.lock();
    match action.as_str() {
        "replan" | "autostart" if !names.is_empty() => {
            return error(400, &format!("{action} accepts no service names"));
        }
        "replan" => {}
        "autostart" => match default_services(&st.plan) {
            Ok(defaults) if defaults.is_empty() => {
                return error_kind(400, "no default services", "no-default-services");
            }
            Ok(defaults) => names = defaults,
            Err(e) => return error(500, &e),
        },
        _ if names.is_empty() => return error(400, &format!("must specify services for {action} action")),
        _ => {}
    }
    let fail = |e: String| error(400, &format!("cannot {action} services: {e}"));
    let flat = |lanes: &Vec<Vec<String>>| lanes.iter().map(Vec::len).sum::<usize>();
    let first = names.first().cloned().unwrap_or_default();
    let id = match action.as_str() {
        "start" | "autostart" => match st.plan.start_order(&names) {
            Ok(lanes) => service::spawn_change(d, &mut st, &action, (&first, flat(&lanes)), Vec::new(), lanes),
            Err(e) => return fail(e),
        },
        "stop" => match st.plan.stop_order(&names) {
            Ok(lanes) => service::spawn_change(d, &mut st, &action, (&first, flat(&lanes)), lanes, Vec::new()),
            Err(e) => return fail(e),
        },
        "restart" => {
            let stop = match st.plan.stop_order(&names) {
                // intersectOrdered: only the named services are stopped.
                Ok(lanes) => lanes
                    .into_iter()
                    .map(|l| l.into_iter().filter(|n| names.contains(n)).collect::<Vec<_>>())
                    .filter(|l| !l.is_empty())
                    .collect(),
                Err(e) => return fail(e),
            };
            let start = match st.plan.start_order(&names) {
                Ok(lanes) => lanes,
                Err(e) => return fail(e),
            };
            let count = flat(&start);
            service::spawn_change(d, &mut st, &action, (&first, count), stop, start)
        }
        "replan" => {
            let (stop, start) = match service::replan(&mut st) {
                Ok(lanes) => lanes,
                Err(e) => return fail(e),
            };
            let mut replanned: Vec<String> = stop.iter().chain(&start).flatten().cloned().collect();
            replanned.sort();
            replanned.dedup();
            let first = replanned.first().cloned().unwrap_or_default();
            let id = service::spawn_change(d, &mut st, &action, (&first, replanned.len()), stop, start);
            check::replan(d, &mut st);
            id
        }
        _ => return error(400, &format!("invalid action {}", quote(&action))),
    };
    drop(st);
    d.notify();
    async_change(&id)
}

/// `ServiceManager.DefaultServiceNames`: the `startup: enabled` services, in start order.
pub fn default_services(plan: &layer::Plan) -> Result<Vec<String>, String> {
    let enabled: Vec<String> =
        plan.services.iter().filter(|(_, s)| s.startup == "enabled").map(|(n, _)| n.clone()).collect();
    Ok(plan.start_order(&enabled)?.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_pebbles() {
        let e = error(400, "label must be set");
        assert_eq!(
            e.body,
            json!({"type": "error", "status-code": 400, "status": "Bad Request", "result": {"message": "label must be set"}})
        );
        assert_eq!(async_change("3").body["change"], "3");
        assert!(async_change("3").body.get("result").is_none());
        assert_eq!(sync(json!(true)).body["result"], true);
    }

    #[test]
    fn query_values_are_decoded() {
        assert_eq!(percent_decode("a%2Cb+c"), "a,b c");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
