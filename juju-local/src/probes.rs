//! Container probes (core/v1 Probe: tcpSocket, httpGet, exec), run by the kubelet daemon's prober on
//! each probe's period. Exec probes run inside the container (its mount, network and PID
//! namespaces, with its environment), as the container runtime's exec does.

use crate::podspec::Probe;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a probe needs to know about its container.
#[derive(Clone, Debug)]
pub struct Target {
    pub address: String,
    /// The argv prefix that runs a command inside the container (`nsenter …`).
    pub exec: Vec<String>,
    pub env: Vec<(String, String)>,
    /// (port, protocol, name).
    pub ports: Vec<(u16, String, String)>,
    pub container: String,
}

/// The timing fields of a probe, with the API server's defaults.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub initial_delay_ms: u64,
    pub period_ms: u64,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

/// Reads a probe's timing: period 10 s, timeout 1 s, success 1, failure 3 by default (core/v1 defaults).
pub fn timing(probe_json: &Value) -> Timing {
    let p: Probe = serde_json::from_value(probe_json.clone()).unwrap_or_default();
    Timing {
        initial_delay_ms: u64::from(p.initial_delay_seconds) * 1000,
        period_ms: u64::from(p.period_seconds.unwrap_or(10).max(1)) * 1000,
        success_threshold: p.success_threshold.unwrap_or(1).max(1),
        failure_threshold: p.failure_threshold.unwrap_or(3).max(1),
    }
}

fn resolve_port(port: &Value, t: &Target) -> Result<u16, String> {
    match port {
        Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()).ok_or_else(|| format!("invalid port {n}")),
        Value::String(s) => match s.parse::<u16>() {
            Ok(p) => Ok(p),
            Err(_) => t
                .ports
                .iter()
                .find(|(_, _, name)| name == s)
                .map(|(p, _, _)| *p)
                .ok_or_else(|| format!("port {s:?} not found in container {:?}", t.container)),
        },
        other => Err(format!("invalid port {other}")),
    }
}

fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let addr: SocketAddr = format!("{host}:{port}").parse().map_err(|e| format!("bad address {host}:{port}: {e}"))?;
    TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("dial tcp {addr}: {e}"))
}

/// Runs one probe. `Err` carries the reason it failed.
pub fn check(probe_json: &Value, t: &Target) -> Result<(), String> {
    let probe: Probe = serde_json::from_value(probe_json.clone()).map_err(|e| format!("invalid probe: {e}"))?;
    let timeout = Duration::from_secs(u64::from(probe.timeout_seconds.unwrap_or(1).max(1)));
    if let Some(tcp) = &probe.tcp_socket {
        let port = resolve_port(&tcp.port, t)?;
        let host = tcp.host.clone().unwrap_or_else(|| t.address.clone());
        return connect(&host, port, timeout).map(|_| ());
    }
    if let Some(http) = &probe.http_get {
        let port = resolve_port(&http.port, t)?;
        let host = http.host.clone().unwrap_or_else(|| t.address.clone());
        let mut s = connect(&host, port, timeout)?;
        let _ = s.set_read_timeout(Some(timeout));
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let req = format!("GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.21\r\n\r\n");
        s.write_all(req.as_bytes()).map_err(|e| format!("http probe: {e}"))?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).map_err(|e| format!("http probe: {e}"))?;
        let line = String::from_utf8_lossy(&buf[..n]);
        let code: u16 = line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        return if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        };
    }
    if let Some(exec) = &probe.exec {
        return run_in_container(t, &exec.command, timeout).and_then(|code| {
            if code == 0 { Ok(()) } else { Err(format!("command {:?} exited with {code}", exec.command)) }
        });
    }
    Err("probe has no handler".into())
}

/// Runs a command inside the container with a bounded wait; returns its exit code.
pub fn run_in_container(t: &Target, argv: &[String], timeout: Duration) -> Result<i32, String> {
    let full: Vec<String> = t.exec.iter().cloned().chain(argv.iter().cloned()).collect();
    let Some((prog, args)) = full.split_first() else { return Err("empty command".into()) };
    let mut child = Command::new(prog)
        .args(args)
        .env_clear()
        .envs(t.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status.code().unwrap_or(-1)),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("command timed out after {}s", timeout.as_secs()));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}
