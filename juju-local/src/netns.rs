//! Pod networking. Each model gets one /24 of 10.201.0.0/16 (index allocated machine-wide under
//! /run/juju-local so parallel models never collide) and a host bridge `jlbr<index>` holding
//! `10.201.<index>.1`. Each pod gets its own network namespace `jl<index>-<app>-<n>` with a veth pair
//! (host end on the bridge, `eth0` inside) and one address; there is no default route, so pod traffic
//! can only reach the bridge and the other pods of the model. Where namespaces are refused, the model
//! falls back to distinct `127.201.<index>.x` loopback addresses on the host network.

use crate::model::{NetMode, Network};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const RUN_DIR: &str = "/run/juju-local";

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run ip {}", args.join(" ")))?;
    if !out.status.success() {
        bail!("ip {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn run_dir() -> PathBuf {
    PathBuf::from(RUN_DIR)
}

/// Allocates a free model index (1..=250) machine-wide and records who owns it.
fn allocate_index(model_dir: &Path) -> Result<(u8, PathBuf)> {
    let dir = run_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let _lock = crate::util::FileLock::acquire(&dir.join("alloc.lock"))?;
    for i in 1..=250u8 {
        let file = dir.join(format!("index-{i}"));
        if let Ok(owner) = std::fs::read_to_string(&file) {
            // Reclaim indexes whose model dir is gone and whose bridge no longer exists.
            let stale = !Path::new(owner.trim()).exists() && !Path::new(&format!("/sys/class/net/jlbr{i}")).exists();
            if !stale {
                continue;
            }
        }
        if Path::new(&format!("/sys/class/net/jlbr{i}")).exists() {
            continue;
        }
        std::fs::write(&file, model_dir.display().to_string())?;
        return Ok((i, file));
    }
    bail!("no free network index in 10.201.0.0/16 (250 models in use)")
}

/// How many juju-local models hold a network index on this machine right now.
pub fn active_models() -> usize {
    std::fs::read_dir(run_dir())
        .map(|rd| rd.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("index-")).count())
        .unwrap_or(0)
}

/// Probes whether this machine lets us create network namespaces.
fn netns_available() -> Result<(), String> {
    if which::which("ip").is_err() {
        return Err("ip (iproute2) not found".into());
    }
    if which::which("bwrap").is_err() {
        return Err("bwrap not found".into());
    }
    if std::env::var("JUJU_LOCAL_NO_NETNS").is_ok_and(|v| !v.is_empty() && v != "0") {
        return Err("disabled by JUJU_LOCAL_NO_NETNS".into());
    }
    let probe = format!("jl-probe-{}", std::process::id());
    match ip(&["netns", "add", &probe]) {
        Ok(()) => {
            let _ = ip(&["netns", "del", &probe]);
            Ok(())
        }
        Err(e) => Err(format!("network namespaces refused: {e}")),
    }
}

/// Sets up the model's network (bridge or loopback fallback). Returns the network and the index file.
pub fn setup_model(model_dir: &Path) -> Result<(Network, PathBuf)> {
    let (index, file) = allocate_index(model_dir)?;
    match netns_available() {
        Ok(()) => {
            let bridge = format!("jlbr{index}");
            let setup = || -> Result<()> {
                ip(&["link", "add", &bridge, "type", "bridge"])?;
                ip(&["addr", "add", &format!("10.201.{index}.1/24"), "dev", &bridge])?;
                ip(&["link", "set", &bridge, "up"])
            };
            if let Err(e) = setup() {
                let _ = ip(&["link", "del", &bridge]);
                let _ = std::fs::remove_file(&file);
                return Err(e);
            }
            Ok((Network { mode: NetMode::Netns, index, bridge: Some(bridge), note: None }, file))
        }
        Err(why) => Ok((Network { mode: NetMode::Loopback, index, bridge: None, note: Some(why) }, file)),
    }
}

/// Removes the bridge and frees the index.
pub fn teardown_model(net: &Network, index_file: Option<&Path>) {
    if let Some(b) = &net.bridge {
        let _ = ip(&["link", "del", b]);
    }
    if let Some(f) = index_file {
        let _ = std::fs::remove_file(f);
    }
}

/// The file that records who owns network index `index`.
pub fn index_file(index: u8) -> PathBuf {
    run_dir().join(format!("index-{index}"))
}

pub fn netns_name(net: &Network, pod: &str) -> String {
    format!("jl{}-{pod}", net.index)
}

/// Creates the pod's namespace, veth pair and address. Idempotent: an existing namespace is replaced.
pub fn create_pod_net(net: &Network, pod: &str, address: &str) -> Result<Option<String>> {
    if net.mode == NetMode::Loopback {
        return Ok(None);
    }
    let ns = netns_name(net, pod);
    delete_pod_net(&ns);
    let host_octet = address.rsplit('.').next().unwrap_or("0");
    let veth = format!("jl{}v{host_octet}", net.index);
    let bridge = net.bridge.clone().context("netns model without a bridge")?;
    let _ = ip(&["link", "del", &veth]);
    let setup = || -> Result<()> {
        ip(&["netns", "add", &ns])?;
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
        ip(&["link", "set", &veth, "master", &bridge])?;
        ip(&["link", "set", &veth, "up"])?;
        // A MAC derived from the address: a restarted pod keeps its IP *and* MAC, so the host's and other
        // pods' neighbour entries stay right (a new random MAC on the same IP left the host sending to
        // the old one until the entry went stale).
        let octets: Vec<u8> = address.split('.').filter_map(|o| o.parse().ok()).collect();
        if let [a, b, c, d] = octets[..] {
            let mac = format!("02:4a:{a:02x}:{b:02x}:{c:02x}:{d:02x}");
            ip(&["-n", &ns, "link", "set", "eth0", "address", &mac])?;
        }
        ip(&["-n", &ns, "addr", "add", &format!("{address}/24"), "dev", "eth0"])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])
    };
    if let Err(e) = setup() {
        delete_pod_net(&ns);
        return Err(e);
    }
    Ok(Some(ns))
}

/// Deletes a pod namespace (its veth goes with it).
pub fn delete_pod_net(ns: &str) {
    if Path::new("/run/netns").join(ns).exists() {
        let _ = ip(&["netns", "del", ns]);
    }
}

/// Every namespace of this model that still exists (for destroy and for tests).
pub fn model_namespaces(net: &Network) -> Vec<String> {
    let prefix = format!("jl{}-", net.index);
    std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}
