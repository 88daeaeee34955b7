//! Readiness and liveness probes (core/v1 Probe: tcpSocket, httpGet, exec) evaluated on demand,
//! when a command or `status` looks at a pod; there is no long-running prober.

use crate::model::ContainerProc;
use crate::podspec::Probe;
use crate::util;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn resolve_port(port: &Value, c: &ContainerProc) -> Result<u16, String> {
    match port {
        Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()).ok_or_else(|| format!("invalid port {n}")),
        Value::String(s) => match s.parse::<u16>() {
            Ok(p) => Ok(p),
            Err(_) => c
                .ports
                .iter()
                .find(|(_, _, name)| name == s)
                .map(|(p, _, _)| *p)
                .ok_or_else(|| format!("port {s:?} not found in container {:?}", c.name)),
        },
        other => Err(format!("invalid port {other}")),
    }
}

fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let addr: SocketAddr = format!("{host}:{port}").parse().map_err(|e| format!("bad address {host}:{port}: {e}"))?;
    TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("dial tcp {addr}: {e}"))
}

/// Runs one probe against a running container. `Err` carries the reason it failed.
pub fn check(probe_json: &Value, pod_address: &str, c: &ContainerProc) -> Result<(), String> {
    let probe: Probe = serde_json::from_value(probe_json.clone()).map_err(|e| format!("invalid probe: {e}"))?;
    let since = util::now_ms().saturating_sub(c.started_ms);
    if since < u64::from(probe.initial_delay_seconds) * 1000 {
        return Err("initial delay has not passed".into());
    }
    let timeout = Duration::from_secs(u64::from(probe.timeout_seconds.unwrap_or(1).max(1)));
    if let Some(tcp) = &probe.tcp_socket {
        let port = resolve_port(&tcp.port, c)?;
        let host = tcp.host.clone().unwrap_or_else(|| pod_address.to_string());
        return connect(&host, port, timeout).map(|_| ());
    }
    if let Some(http) = &probe.http_get {
        let port = resolve_port(&http.port, c)?;
        let host = http.host.clone().unwrap_or_else(|| pod_address.to_string());
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
        return run_in_container(c, &exec.command, timeout).and_then(|code| {
            if code == 0 { Ok(()) } else { Err(format!("command {:?} exited with {code}", exec.command)) }
        });
    }
    Err("probe has no handler".into())
}

/// Runs a command inside the container's namespaces with a bounded wait; returns its exit code.
pub fn run_in_container(c: &ContainerProc, argv: &[String], timeout: Duration) -> Result<i32, String> {
    let full: Vec<String> = c.enter.iter().cloned().chain(["--".to_string()]).chain(argv.iter().cloned()).collect();
    let Some((prog, args)) = full.split_first() else { return Err("empty command".into()) };
    let mut child = Command::new(prog)
        .args(args)
        .env_clear()
        .envs(c.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
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
