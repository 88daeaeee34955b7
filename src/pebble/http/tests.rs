//! The real [`UnixTransport`] under [`Pebble`], against a tiny HTTP server on a unix socket in a temp dir: the
//! exact requests each operation sends, the response framings it reads, and its bounds.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::super::{Pebble, PebbleError};
use super::UnixTransport;

/// A fresh directory for one test's socket.
fn socket(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("redis-k8s-pebble-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("pebble.socket")
}

/// Reads one request: the head, then `Content-Length` bytes of body.
fn read_request(stream: &mut std::os::unix::net::UnixStream) -> Vec<u8> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map(|n| n.trim().parse::<usize>().unwrap())
                .unwrap_or(0);
            if raw.len() >= end + 4 + length {
                return raw;
            }
        }
        let n = stream.read(&mut chunk).unwrap();
        if n == 0 {
            return raw;
        }
        raw.extend_from_slice(&chunk[..n]);
    }
}

/// Serves one connection with `response` and returns the raw request it read.
fn serve(tag: &str, response: Vec<u8>) -> (PathBuf, JoinHandle<Vec<u8>>) {
    let path = socket(tag);
    let listener = UnixListener::bind(&path).unwrap();
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let request = read_request(&mut stream);
        let _ = stream.write_all(&response);
        request
    });
    (path, handle)
}

fn pebble(path: PathBuf) -> Pebble {
    Pebble::new("redis", Box::new(UnixTransport::new(path))).with_timeout(Duration::from_secs(5))
}

/// A response with a `Content-Length`.
fn sized(status: &str, body: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        .into_bytes()
}

/// The head of a raw request, and its body parsed as JSON.
fn split(raw: &[u8]) -> (String, Vec<u8>) {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    (String::from_utf8(raw[..end + 4].to_vec()).unwrap(), raw[end + 4..].to_vec())
}

#[test]
fn add_layer_sends_pebbles_layer_request_and_reads_a_sized_response() {
    let (path, server) =
        serve("layer", sized("200 OK", r#"{"type":"sync","status-code":200,"status":"OK","result":true}"#));
    let mut pebble = pebble(path);
    pebble.add_layer("redis", "services: {}\n", true).unwrap();
    let (head, body) = split(&server.join().unwrap());
    assert_eq!(
        head,
        format!(
            "POST /v1/layers HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        )
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        json!({"action": "add", "combine": true, "label": "redis", "format": "yaml", "layer": "services: {}\n"})
    );
    assert_eq!(pebble.calls(), ["POST /v1/layers"]);
}

#[test]
fn plan_yaml_is_a_get_without_a_body_and_reads_a_chunked_response() {
    let body = r#"{"type":"sync","status-code":200,"status":"OK","result":"services:\n  redis: {}\n"}"#;
    let (a, b) = body.split_at(20);
    let response = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x};ext=1\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\nX-Trailer: t\r\n\r\n",
        a.len(),
        b.len()
    );
    let (path, server) = serve("plan", response.into_bytes());
    let mut pebble = pebble(path);
    assert_eq!(pebble.plan_yaml().unwrap(), "services:\n  redis: {}\n");
    let (head, body) = split(&server.join().unwrap());
    assert_eq!(head, "GET /v1/plan?format=yaml HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert!(body.is_empty());
    assert_eq!(pebble.calls(), ["GET /v1/plan"]);
}

#[test]
fn replan_and_restart_post_a_services_action_and_return_the_change() {
    let accepted = r#"{"type":"async","status-code":202,"status":"Accepted","change":"42","result":null}"#;
    let (path, server) = serve("replan", sized("202 Accepted", accepted));
    assert_eq!(pebble(path).replan().unwrap(), "42");
    let (_, body) = split(&server.join().unwrap());
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), json!({"action": "replan", "services": []}));

    let (path, server) = serve("restart", sized("202 Accepted", accepted));
    assert_eq!(pebble(path).restart(&["redis", "sentinel"]).unwrap(), "42");
    let (head, body) = split(&server.join().unwrap());
    assert!(head.starts_with("POST /v1/services HTTP/1.1\r\n"), "{head}");
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"action": "restart", "services": ["redis", "sentinel"]})
    );
}

#[test]
fn wait_change_asks_pebble_to_wait_and_a_failed_change_is_its_message() {
    let done = r#"{"type":"sync","status-code":200,"status":"OK","result":{"id":"7","kind":"replan","status":"Done","ready":true}}"#;
    let (path, server) = serve("wait", sized("200 OK", done));
    let change = pebble(path).wait_change("7", Duration::from_secs(5)).unwrap();
    assert_eq!((change.id.as_str(), change.status.as_str()), ("7", "Done"));
    let (head, _) = split(&server.join().unwrap());
    assert!(head.starts_with("GET /v1/changes/7/wait?timeout=5s HTTP/1.1\r\n"), "{head}");

    let failed = r#"{"type":"sync","status-code":200,"status":"OK","result":{"id":"8","kind":"replan","status":"Error","ready":true,"err":"cannot perform the following tasks:\n- Start service \"redis\" (exited quickly)"}}"#;
    let (path, server) = serve("waitfail", sized("200 OK", failed));
    let err = pebble(path).wait_change("8", Duration::from_millis(1500)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pebble (redis): GET /v1/changes/8/wait: change 8 failed: cannot perform the following tasks: - Start \
         service \"redis\" (exited quickly)"
    );
    let (head, _) = split(&server.join().unwrap());
    assert!(head.starts_with("GET /v1/changes/8/wait?timeout=1500ms HTTP/1.1\r\n"), "{head}");

    let gateway = r#"{"type":"error","status-code":504,"status":"Gateway Timeout","result":{"message":"timed out waiting for change after 1s"}}"#;
    let (path, server) = serve("waitslow", sized("504 Gateway Timeout", gateway));
    let err = pebble(path).wait_change("9", Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, PebbleError::Timeout { after, .. } if after == Duration::from_secs(1)), "{err:?}");
    server.join().unwrap();
}

#[test]
fn push_file_sends_pebbles_multipart_and_its_content_appears_nowhere_else() {
    let secret = b"requirepass s3cr3t\r\n--not-a-boundary\r\n";
    let rejected = r#"{"type":"sync","status-code":200,"status":"OK","result":[{"path":"/etc/redis/auth.conf","error":{"message":"permission denied","kind":"permission-denied"}}]}"#;
    let (path, server) = serve("push", sized("200 OK", rejected));
    let mut pebble = pebble(path);
    let err = pebble.push_file("/etc/redis/auth.conf", secret, "600", true).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pebble (redis): POST /v1/files: cannot write /etc/redis/auth.conf: permission denied (permission-denied)"
    );
    for text in [err.to_string(), format!("{err:?}"), pebble.calls().join("\n")] {
        assert!(!text.contains("s3cr3t"), "{text}");
    }
    assert_eq!(pebble.calls(), ["POST /v1/files"]);

    let (head, body) = split(&server.join().unwrap());
    let boundary = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: multipart/form-data; boundary="))
        .expect("a multipart content type")
        .to_string();
    assert!(head.starts_with("POST /v1/files HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"), "{head}");
    assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())), "{head}");
    let text = String::from_utf8_lossy(&body).into_owned();
    let request_part = format!(
        "--{boundary}\r\nContent-Type: application/json\r\nContent-Disposition: form-data; name=\"request\"\r\n\r\n"
    );
    assert!(text.starts_with(&request_part), "{text}");
    let json_end = text[request_part.len()..].find("\r\n").unwrap() + request_part.len();
    assert_eq!(
        serde_json::from_str::<Value>(&text[request_part.len()..json_end]).unwrap(),
        json!({"action": "write", "files": [{"path": "/etc/redis/auth.conf", "make-dirs": true, "permissions": "600"}]})
    );
    let file_part = format!(
        "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Disposition: form-data; name=\"files\"; \
         filename=\"/etc/redis/auth.conf\"\r\n\r\n"
    );
    assert_eq!(&text[json_end..json_end + file_part.len()], file_part);
    let rest = &body[json_end + file_part.len()..];
    assert_eq!(&rest[..secret.len()], secret);
    assert_eq!(&rest[secret.len()..], format!("\r\n--{boundary}--\r\n").as_bytes());
}

#[test]
fn checks_read_a_response_that_ends_with_the_connection() {
    let body = r#"{"type":"sync","status-code":200,"status":"OK","result":[{"name":"alive","startup":"enabled","status":"down","failures":3,"threshold":3},{"name":"ready","status":"up","threshold":3}]}"#;
    let (path, server) =
        serve("checks", format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{body}").into_bytes());
    let checks = pebble(path).checks().unwrap();
    let got: Vec<_> = checks.iter().map(|c| (c.name.as_str(), c.status.as_str(), c.failures)).collect();
    assert_eq!(got, [("alive", "down", 3), ("ready", "up", 0)]);
    let (head, _) = split(&server.join().unwrap());
    assert!(head.starts_with("GET /v1/checks HTTP/1.1\r\n"), "{head}");
}

#[test]
fn an_error_envelope_is_one_line_naming_the_call() {
    let body = r#"{"type":"error","status-code":400,"status":"Bad Request","result":{"message":"cannot parse layer YAML: cannot parse layer \"redis\": yaml: line 2:\n  mapping values are not allowed"}}"#;
    let (path, server) = serve("error", sized("400 Bad Request", body));
    let err = pebble(path).add_layer("redis", "x: : y", true).unwrap_err();
    assert_eq!(
        err.to_string(),
        "pebble (redis): POST /v1/layers: 400 Bad Request: cannot parse layer YAML: cannot parse layer \"redis\": \
         yaml: line 2: mapping values are not allowed"
    );
    assert!(matches!(err, PebbleError::Api { status_code: 400, .. }));
    server.join().unwrap();
}

#[test]
fn a_server_that_never_answers_is_a_timeout_bounded_by_the_call() {
    let path = socket("silent");
    let listener = UnixListener::bind(&path).unwrap();
    let (release, held) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let _ = read_request(&mut stream);
        let _ = held.recv_timeout(Duration::from_secs(30));
    });
    let mut pebble = pebble(path).with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = pebble.plan_yaml().unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.to_string(), "pebble (redis): GET /v1/plan: no answer within 300ms");
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(3), "{took:?}");
    let _ = release.send(());
    server.join().unwrap();
}

#[test]
fn a_missing_socket_or_one_nobody_listens_on_is_not_running() {
    let path = socket("missing");
    let err = pebble(path.clone()).plan_yaml().unwrap_err();
    assert!(err.is_not_running(), "{err}");
    assert!(err.to_string().starts_with("pebble (redis): GET /v1/plan: not running ("), "{err}");
    drop(UnixListener::bind(&path).unwrap());
    let err = pebble(path).checks().unwrap_err();
    assert!(err.is_not_running(), "{err}");
}

#[test]
fn an_oversized_response_is_a_protocol_error_in_every_framing() {
    let big = "x".repeat(4096);
    let framings = [
        ("bigsized", sized("200 OK", &big)),
        (
            "bigchunked",
            format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n{big}\r\n0\r\n\r\n").into_bytes(),
        ),
        ("bigeof", format!("HTTP/1.1 200 OK\r\n\r\n{big}").into_bytes()),
    ];
    for (tag, response) in framings {
        let (path, server) = serve(tag, response);
        let transport = UnixTransport::new(path).with_max_response(1024);
        let mut pebble = Pebble::new("redis", Box::new(transport));
        let err = pebble.plan_yaml().unwrap_err();
        assert_eq!(err.to_string(), "pebble (redis): GET /v1/plan: bad response: response larger than 1024 bytes");
        server.join().unwrap();
    }
}

#[test]
fn a_truncated_or_garbled_response_is_a_protocol_error() {
    let (path, server) = serve("short", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"type\"".to_vec());
    let err = pebble(path).plan_yaml().unwrap_err();
    assert!(matches!(err, PebbleError::Protocol { .. }), "{err}");
    server.join().unwrap();
    let (path, server) = serve("garbled", b"SSH-2.0-OpenSSH\r\n\r\n".to_vec());
    let err = pebble(path).plan_yaml().unwrap_err();
    assert_eq!(err.to_string(), "pebble (redis): GET /v1/plan: bad response: not an HTTP/1.x status line");
    server.join().unwrap();
}
