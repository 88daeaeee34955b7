//! Cluster DNS: a small UDP DNS server the kubelet daemon runs on the model's bridge address (the
//! stand-in for CoreDNS's `kubernetes` plugin). It answers A queries for the names Kubernetes publishes
//! in the namespace (the model name, findings §11) under `cluster.local`:
//!
//! - `<app>.<ns>.svc.cluster.local`: the application Service. juju-local has no kube-proxy, so instead of
//!   a ClusterIP it answers with the addresses of the application's Ready, non-terminating pods (the
//!   endpoints a ClusterIP would balance over), rotated on each query;
//! - `<app>-endpoints.<ns>.svc.cluster.local`: the headless Service, every pod's address (Juju sets
//!   `publishNotReadyAddresses: true`, k8s.go `configureHeadlessService`), while that Service exists;
//! - `<pod>.<app>-endpoints.<ns>.svc.cluster.local`: each StatefulSet pod (hostname + subdomain), while
//!   the headless Service exists.
//!
//! Pods and hooks get `search <ns>.svc.cluster.local svc.cluster.local cluster.local` and `ndots:5`
//! (kubelet `generateSearchesForDNSClusterFirst`), so the short forms resolve the way they do in a
//! cluster. Other names under cluster.local are NXDOMAIN; names outside it are forwarded to the host's
//! nameservers (CoreDNS `forward . /etc/resolv.conf`).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// Name (lower case, no trailing dot) → addresses, plus whether to rotate them.
#[derive(Default, Clone, Debug, PartialEq)]
pub struct Table {
    pub names: BTreeMap<String, (Vec<Ipv4Addr>, bool)>,
}

impl Table {
    pub fn insert(&mut self, name: &str, addrs: Vec<Ipv4Addr>, rotate: bool) {
        self.names.insert(name.to_ascii_lowercase(), (addrs, rotate));
    }
}

/// The resolv.conf of a pod (and of the operator pod hooks run in) in namespace `ns`.
pub fn resolv_conf(ns: &str, server: &str) -> String {
    format!(
        "search {ns}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}\nnameserver {server}\noptions ndots:5\n"
    )
}

/// A running server; dropping it stops the thread.
pub struct Server {
    pub table: Arc<Mutex<Table>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the server on `addr:53`.
pub fn start(addr: Ipv4Addr) -> std::io::Result<Server> {
    let sock = UdpSocket::bind(SocketAddr::from((addr, 53)))?;
    sock.set_read_timeout(Some(Duration::from_millis(300)))?;
    let table = Arc::new(Mutex::new(Table::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let upstream = upstream_servers();
    let (t, s) = (table.clone(), stop.clone());
    let thread = std::thread::spawn(move || {
        let rr = AtomicUsize::new(0);
        let mut buf = [0u8; 1500];
        while !s.load(Ordering::SeqCst) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
            let query = buf[..n].to_vec();
            let local = {
                let table = t.lock().unwrap_or_else(|e| e.into_inner());
                answer(&query, &table, rr.fetch_add(1, Ordering::Relaxed))
            };
            match local {
                Some(reply) => {
                    let _ = sock.send_to(&reply, from);
                }
                None => {
                    let (sock2, upstream) = (sock.try_clone(), upstream.clone());
                    if let Ok(sock2) = sock2 {
                        std::thread::spawn(move || forward(&query, &upstream, &sock2, from));
                    }
                }
            }
        }
    });
    Ok(Server { table, stop, thread: Some(thread) })
}

fn upstream_servers() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .take(3)
        .collect()
}

fn forward(query: &[u8], upstream: &[SocketAddr], reply_to: &UdpSocket, from: SocketAddr) {
    for server in upstream {
        let Ok(s) = UdpSocket::bind(if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }) else { continue };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.send_to(query, server).is_err() {
            continue;
        }
        let mut buf = [0u8; 4096];
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            let _ = reply_to.send_to(&buf[..n], from);
            return;
        }
    }
    if let Some(r) = error_reply(query, 2) {
        let _ = reply_to.send_to(&r, from);
    }
}

/// Parses the question: (name, qtype, end offset of the question).
fn question(q: &[u8]) -> Option<(String, u16, usize)> {
    if q.len() < 12 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    Some((labels.join("."), qtype, i + 4))
}

fn error_reply(q: &[u8], rcode: u8) -> Option<Vec<u8>> {
    let (_, _, end) = question(q)?;
    let mut r = q[..end].to_vec();
    r[2] = 0x80 | (q[2] & 0x01); // QR, RD copied
    r[3] = 0x80 | rcode; // RA
    r[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 0]);
    Some(r)
}

/// The reply to `q`, or None when the name is outside the cluster domain (forward it).
pub fn answer(q: &[u8], table: &Table, rr: usize) -> Option<Vec<u8>> {
    let Some((name, qtype, end)) = question(q) else {
        return if q.len() >= 12 { error_reply(q, 1) } else { None };
    };
    let name = name.trim_end_matches('.').to_string();
    if name != CLUSTER_DOMAIN && !name.ends_with(&format!(".{CLUSTER_DOMAIN}")) {
        return None;
    }
    let mut r = q[..end].to_vec();
    r[2] = 0x84 | (q[2] & 0x01); // QR, AA, RD copied
    r[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 0]);
    match table.names.get(&name) {
        None => {
            r[3] = 0x83; // RA, NXDOMAIN
        }
        Some((addrs, rotate)) => {
            r[3] = 0x80;
            if qtype == 1 || qtype == 255 {
                let mut list = addrs.clone();
                if *rotate && !list.is_empty() {
                    let k = rr % list.len();
                    list.rotate_left(k);
                }
                r[6..8].copy_from_slice(&(list.len() as u16).to_be_bytes());
                for a in list {
                    r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
                    r.extend_from_slice(&5u32.to_be_bytes()); // TTL 5 s, as CoreDNS's kubernetes plugin
                    r.extend_from_slice(&[0, 4]);
                    r.extend_from_slice(&a.octets());
                }
            }
        }
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q
    }

    #[test]
    fn answers_known_names_and_refuses_unknown_cluster_names() {
        let mut t = Table::default();
        t.insert("r-0.r-endpoints.m.svc.cluster.local", vec![Ipv4Addr::new(10, 1, 2, 3)], false);
        let r = answer(&query("R-0.r-endpoints.m.svc.cluster.local", 1), &t, 0).unwrap();
        assert_eq!(r[3] & 0x0f, 0);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        assert_eq!(&r[r.len() - 4..], &[10, 1, 2, 3]);
        let aaaa = answer(&query("r-0.r-endpoints.m.svc.cluster.local", 28), &t, 0).unwrap();
        assert_eq!((aaaa[3] & 0x0f, u16::from_be_bytes([aaaa[6], aaaa[7]])), (0, 0));
        let nx = answer(&query("r-0.r-endpoints.svc.cluster.local", 1), &t, 0).unwrap();
        assert_eq!(nx[3] & 0x0f, 3);
        assert!(answer(&query("example.com", 1), &t, 0).is_none());
    }

    #[test]
    fn resolv_conf_has_kubernetes_search_list() {
        assert_eq!(
            resolv_conf("m", "10.0.0.1"),
            "search m.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.0.0.1\noptions ndots:5\n"
        );
    }
}
