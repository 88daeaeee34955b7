//! The shipped pod scripts run for real: redis-server and Sentinel processes on loopback addresses, one
//! sandbox directory per test, every process killed when the test ends, waits bounded.

use super::*;

/// Writes the config volume's files for `layout` into its config dir, and the auth Secret into its auth dir.
fn write_pod_files(cfg: &RedisConfig, t: &Deployment, layout: &Layout<'_>) -> Rendered {
    let rendered = Rendered::new(cfg, t, layout).unwrap();
    for (name, text) in &rendered.files {
        std::fs::write(format!("{}/{name}", layout.config_dir), text).unwrap();
    }
    for (name, text) in &rendered.auth {
        std::fs::write(format!("{}/{name}", layout.auth_dir), text).unwrap();
    }
    rendered
}

/// Who the scripts think they are: the test variables, else HOSTNAME (set by the container runtime, and by
/// juju-local), else the host name; a name without an ordinal stops the script.
#[test]
fn scripts_find_their_pod_name_and_ordinal() {
    let sb = Sandbox::new("names");
    let (conf, auth) = (sb.path("conf"), sb.path("auth"));
    let layout = Layout { config_dir: &conf, auth_dir: &auth, ..POD };
    let settings = render_settings(&no_auth(), &topo(3), &layout);
    let script = |body: &str| {
        inline_script(&format!("#!/bin/sh\nset -eu\n{HERE_LINE}{SOURCE_SETTINGS}{SOURCE_COMMON}{body}\n"), &settings)
    };
    let probe = script("echo \"$ORDINAL $SELF\"");
    let run = |env: &[(&str, &str)]| {
        let out = std::process::Command::new("sh")
            .args(["-c", &probe])
            .env_remove("HOSTNAME")
            .env_remove("REDIS_K8S_POD_NAME")
            .env_remove("REDIS_K8S_HOST_PREFIX")
            .env_remove("REDIS_K8S_HOST_SUFFIX")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    assert_eq!(run(&[("HOSTNAME", "redis-2")]), (true, "2 redis-2.redis-endpoints".to_owned()));
    assert_eq!(
        run(&[("HOSTNAME", "redis-2"), ("REDIS_K8S_POD_NAME", "redis-1")]),
        (true, "1 redis-1.redis-endpoints".to_owned())
    );
    assert_eq!(
        run(&[("REDIS_K8S_POD_NAME", "redis-0"), ("REDIS_K8S_HOST_PREFIX", "10.0.0.1"), ("REDIS_K8S_HOST_SUFFIX", "")]),
        (true, "0 10.0.0.10".to_owned())
    );
    assert!(!run(&[("HOSTNAME", "not-a-pod")]).0);
    assert!(!run(&[("HOSTNAME", "redis-")]).0);
    // Only this application's pods are trusted as a primary.
    let check = script("is_pod_host \"$1\"");
    let trusted = |host: &str| {
        std::process::Command::new("sh")
            .args(["-c", &check, "sh", host])
            .env("HOSTNAME", "redis-1")
            .status()
            .unwrap()
            .success()
    };
    assert!(trusted("redis-0.redis-endpoints") && trusted("redis-12.redis-endpoints"));
    for bad in ["evil.example.com", "10.1.2.3", "redis-x.redis-endpoints", "redis-0.other-endpoints", "redis-0", ""] {
        assert!(!trusted(bad), "{bad:?} trusted");
    }
}

// ---- Running the rendered files with the real redis-server ------------------------------------------------

/// Temp directories and processes for one test; everything is removed and killed on drop, even on failure.
struct Sandbox {
    dir: std::path::PathBuf,
    /// `(name, child)`: each child leads its own process group, so killing the group also kills anything a
    /// start script runs.
    children: Vec<(String, std::process::Child)>,
}

impl Sandbox {
    fn new(name: &str) -> Sandbox {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("redis-k8s-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Sandbox { dir, children: Vec::new() }
    }

    fn path(&self, rel: &str) -> String {
        let p = self.dir.join(rel);
        std::fs::create_dir_all(&p).unwrap();
        p.to_str().unwrap().to_owned()
    }

    /// Starts `program args` with `env`, output appended to `<name>.log` in the sandbox.
    fn spawn(&mut self, name: &str, program: &str, args: &[&str], env: &[(&str, &str)]) {
        use std::os::unix::process::CommandExt;
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("{name}.log"))).unwrap();
        let child = std::process::Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program} ({e}): these tests need sh and redis-server 7"));
        self.children.push((name.to_owned(), child));
    }

    fn kill(&mut self, name: &str) {
        if let Some(i) = self.children.iter().position(|(n, _)| n == name) {
            let (_, mut child) = self.children.remove(i);
            kill_group(&mut child);
        }
    }

    /// What Kubernetes does to a container being stopped: SIGTERM to its first process only (not to what it
    /// started), then, after `grace`, SIGKILL to everything. Returns the exit status if it exited in time.
    fn terminate(&mut self, name: &str, grace: Duration) -> Option<std::process::ExitStatus> {
        let i = self.children.iter().position(|(n, _)| n == name)?;
        let (_, mut child) = self.children.remove(i);
        // SAFETY: kill(2) on a child of this test; no memory is touched.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + grace;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => break None,
            }
        };
        kill_group(&mut child);
        status
    }

    /// Sends `signal` to a process's whole group (SIGSTOP and SIGCONT: a node too slow to answer).
    fn signal(&self, name: &str, signal: i32) {
        let (_, child) = self.children.iter().find(|(n, _)| n == name).expect("a process this test started");
        // SAFETY: kill(2) on the process group of a child of this test; no memory is touched.
        unsafe {
            libc::kill(-(child.id() as i32), signal);
        }
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        let mut entries: Vec<_> = std::fs::read_dir(&self.dir).unwrap().flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries.into_iter().filter(|p| p.extension().is_some_and(|e| e == "log")) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            out += &format!("--- {}\n", path.display());
            for line in tail.into_iter().rev() {
                out += line;
                out.push('\n');
            }
        }
        out
    }

    /// Polls `ok` every 50 ms for up to 15 s; on timeout, fails with the processes' logs.
    fn wait_until(&self, what: &str, ok: impl FnMut() -> bool) {
        self.wait_up_to(15, what, ok);
    }

    fn wait_up_to(&self, secs: u64, what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while !ok() {
            if std::time::Instant::now() >= deadline {
                panic!("gave up after {secs} s waiting for {what}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn kill_group(child: &mut std::process::Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on a process group this test created; no memory is touched.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            kill_group(child);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

use std::time::Duration;
const T: Duration = Duration::from_secs(3);

/// A port nothing listens on, on any address (so also free on the 127.x.y.z addresses the tests use).
fn free_port() -> u16 {
    std::net::TcpListener::bind(("0.0.0.0", 0)).unwrap().local_addr().unwrap().port()
}

/// Writes the auth Secret's files as Kubernetes would mount them.
fn write_secret(dir: &str, password: &str) {
    std::fs::write(format!("{dir}/{AUTH_CONF}"), auth_conf(Some(password), None)).unwrap();
    std::fs::write(format!("{dir}/{PASSWORD_FILE}"), password).unwrap();
    std::fs::write(format!("{dir}/{PREVIOUS_PASSWORD_FILE}"), "").unwrap();
}

fn get(addr: &str, pw: Option<&str>, cmd: &[&str]) -> Option<Resp> {
    resp::query(addr, pw, cmd, T).ok()
}

fn config_get(addr: &str, pw: &str, name: &str) -> String {
    match get(addr, Some(pw), &["CONFIG", "GET", name]) {
        Some(Resp::Array(items)) if items.len() == 2 => items[1].as_str().unwrap_or_default().to_owned(),
        other => panic!("CONFIG GET {name}: {other:?}"),
    }
}

/// Runs the real redis-server on the rendered redis.conf (with auth on and non-default options), laid out in a
/// temp dir instead of /etc/redis-k8s, /etc/redis-auth and /data, listening on 127.0.0.1.
#[test]
fn redis_server_runs_the_rendered_conf() {
    let mut sb = Sandbox::new("conf");
    let port = free_port();
    let (conf_dir, auth_dir, data_dir) = (sb.path("conf"), sb.path("auth"), sb.path("data"));
    let layout = Layout {
        config_dir: &conf_dir,
        auth_dir: &auth_dir,
        data_dir: &data_dir,
        sentinel_dir: "/nonexistent",
        bind: "127.0.0.1",
        sentinel_port: SENTINEL_PORT,
    };
    let cfg = RedisConfig {
        port,
        save: vec![SavePoint { seconds: 900, changes: 1 }, SavePoint { seconds: 60, changes: 500 }],
        maxmemory: 64 * 1024 * 1024,
        maxmemory_policy: MaxmemoryPolicy::AllkeysLfu,
        appendfsync: AppendFsync::Always,
        ..RedisConfig::default()
    };
    let conf = render_redis_conf(&cfg, &layout);
    // The pod's file differs only in the paths and the bind address.
    let pod_conf = redis_conf(&cfg);
    assert_eq!(
        conf.replace(&data_dir, "/data")
            .replace(&auth_dir, "/etc/redis-auth")
            .replace("bind 127.0.0.1", "bind 0.0.0.0"),
        pod_conf
    );
    let conf_path = format!("{conf_dir}/{REDIS_CONF}");
    std::fs::write(&conf_path, &conf).unwrap();
    write_secret(&auth_dir, PW);
    sb.spawn("redis", "redis-server", &[&conf_path], &[]);

    let addr = format!("127.0.0.1:{port}");
    sb.wait_until("redis-server to answer", || resp::ping(&addr, Some(PW), T).is_ok());
    assert!(matches!(get(&addr, None, &["PING"]), Some(Resp::Error(e)) if e.starts_with("NOAUTH")));
    assert!(resp::query(&addr, Some("wrong-password-0123456789"), &["PING"], T).is_err());
    assert_eq!(config_get(&addr, PW, "port"), port.to_string());
    assert_eq!(config_get(&addr, PW, "protected-mode"), "yes");
    assert_eq!(config_get(&addr, PW, "appendonly"), "yes");
    assert_eq!(config_get(&addr, PW, "appendfsync"), "always");
    assert_eq!(config_get(&addr, PW, "save"), "900 1 60 500");
    assert_eq!(config_get(&addr, PW, "maxmemory"), (64 * 1024 * 1024).to_string());
    assert_eq!(config_get(&addr, PW, "maxmemory-policy"), "allkeys-lfu");
    assert_eq!(config_get(&addr, PW, "replica-read-only"), "yes");
    assert_eq!(config_get(&addr, PW, "dir"), data_dir);
    assert_eq!(config_get(&addr, PW, "logfile"), "");
    assert_eq!(config_get(&addr, PW, "masterauth"), PW);
    // The append-only file is really written to the data dir.
    assert_eq!(get(&addr, Some(PW), &["SET", "k", "v"]), Some(Resp::Simple("OK".into())));
    sb.wait_until("the AOF directory", || std::path::Path::new(&data_dir).join("appendonlydir").is_dir());
    // `logfile ""` sends the log to stdout, where Kubernetes collects it.
    assert!(sb.logs().contains("Ready to accept connections"), "{}", sb.logs());
}

/// One pod of the three-pod test: its address, directories and processes.
struct TestPod {
    ordinal: u32,
    host: String,
    dir: String,
    /// The ConfigMap's files, as rendered: written again before each start, since in a pod they are a read-only
    /// volume that a server's `CONFIG REWRITE` (Sentinel sends one with every REPLICAOF) cannot change, and root
    /// running these tests ignores file modes.
    files: Vec<(String, String)>,
}

impl TestPod {
    fn redis(&self, port: u16) -> String {
        format!("{}:{port}", self.host)
    }
}

fn info(addr: &str, pw: &str) -> String {
    resp::info(addr, Some(pw), "replication", T).unwrap_or_default()
}

fn is_replica_of(addr: &str, pw: &str, primary_host: &str) -> bool {
    let text = info(addr, pw);
    resp::info_field(&text, "role") == Some("slave")
        && resp::info_field(&text, "master_host") == Some(primary_host)
        && resp::info_field(&text, "master_link_status") == Some("up")
}

fn sentinel_says(addr: &str, pw: &str, app: &str) -> Option<(String, u16)> {
    resp::sentinel_primary(&[addr.to_owned()], app, Some(pw), T)
}

/// A flat RESP map (`[k1, v1, k2, v2, …]`) as pairs.
fn resp_map(reply: &Resp) -> Vec<(String, String)> {
    match reply {
        Resp::Array(items) => items
            .chunks(2)
            .filter_map(|kv| Some((kv.first()?.as_str()?.to_owned(), kv.get(1)?.as_str()?.to_owned())))
            .collect(),
        _ => Vec::new(),
    }
}

/// A 3-pod deployment of the rendered files on this machine: each pod gets its own loopback address
/// (127.a.b.10-12, all the same ports, as pods have their own IPs); the REDIS_K8S_* variables stand in for the
/// pod name and the cluster DNS.
struct ThreePods {
    app: &'static str,
    pw: &'static str,
    prefix: String,
    port: u16,
    sentinel_port: u16,
    pods: Vec<TestPod>,
}

impl ThreePods {
    fn new(sb: &Sandbox, pw: &'static str) -> ThreePods {
        let app = "cache";
        let pid = std::process::id();
        let salt = {
            use std::sync::atomic::{AtomicU32, Ordering};
            static K: AtomicU32 = AtomicU32::new(0);
            K.fetch_add(1, Ordering::Relaxed)
        };
        let prefix = format!("127.{}.{}.1", (pid >> 8) % 120 + 2 + 120 * (salt % 2), pid % 250 + 2);
        let port = free_port();
        let sentinel_port = free_port();
        let cfg = RedisConfig { port, save: vec![], ..RedisConfig::default() };
        let t = Deployment { app: app.to_owned(), units: 3, password: Some(pw.to_owned()), previous_password: None };
        let pods: Vec<TestPod> = (0..3)
            .map(|ordinal| TestPod {
                ordinal,
                host: format!("{prefix}{ordinal}"),
                dir: sb.path(&format!("pod{ordinal}")),
                files: Vec::new(),
            })
            .collect();
        let mut pods = pods;
        for pod in &mut pods {
            let (conf, auth, data, sentinel) = (
                sb.path(&format!("pod{}/conf", pod.ordinal)),
                sb.path(&format!("pod{}/auth", pod.ordinal)),
                sb.path(&format!("pod{}/data", pod.ordinal)),
                sb.path(&format!("pod{}/sentinel", pod.ordinal)),
            );
            let layout = Layout {
                config_dir: &conf,
                auth_dir: &auth,
                data_dir: &data,
                sentinel_dir: &sentinel,
                bind: &pod.host,
                sentinel_port,
            };
            let files = write_pod_files(&cfg, &t, &layout);
            write_secret(&auth, pw);
            assert!(files.files.iter().all(|(_, text)| !text.contains(pw)));
            pod.files = files.files.iter().map(|(name, text)| (format!("{conf}/{name}"), text.clone())).collect();
        }
        ThreePods { app, pw, prefix, port, sentinel_port, pods }
    }

    fn start(&self, sb: &mut Sandbox, ordinal: usize, which: &str) {
        let pod = &self.pods[ordinal];
        // Replaced atomically (a new file renamed over the old), as the kubelet's AtomicWriter does: the pod's
        // other container may be reading its script from the same directory at this moment.
        for (path, text) in &pod.files {
            let tmp = format!("{path}.tmp-{which}");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
        let script = format!("{}/conf/start-{which}.sh", pod.dir);
        let pod_name = format!("{}-{}", self.app, pod.ordinal);
        let env = [
            ("REDIS_K8S_POD_NAME", pod_name.as_str()),
            ("REDIS_K8S_HOST_PREFIX", self.prefix.as_str()),
            ("REDIS_K8S_HOST_SUFFIX", ""),
        ];
        sb.spawn(&format!("pod{}-{which}", pod.ordinal), "sh", &[&script], &env);
    }

    fn sentinel(&self, ordinal: usize) -> String {
        format!("{}:{}", self.pods[ordinal].host, self.sentinel_port)
    }

    /// Starts every container at once (a fresh deployment) and waits until pod 0 is the primary, both replicas
    /// are linked and every Sentinel knows both replicas and both other Sentinels.
    fn start_all_and_settle(&self, sb: &mut Sandbox) {
        for i in 0..3 {
            self.start(sb, i, "sentinel");
            self.start(sb, i, "redis");
        }
        let (pw, port, app) = (self.pw, self.port, self.app);
        let primary = self.pods[0].redis(port);
        sb.wait_until("the primary", || resp::ping(&primary, Some(pw), T).is_ok());
        for pod in &self.pods[1..] {
            sb.wait_until(&format!("pod {} to replicate from pod 0", pod.ordinal), || {
                is_replica_of(&pod.redis(port), pw, &self.pods[0].host)
            });
        }
        for i in 0..3 {
            let sentinel = self.sentinel(i);
            sb.wait_until("the Sentinel to know both replicas and both other Sentinels", || {
                let count = |sub: &str| match get(&sentinel, Some(pw), &["SENTINEL", sub, app]) {
                    Some(Resp::Array(items)) => items.len(),
                    _ => 0,
                };
                count("REPLICAS") == 2 && count("SENTINELS") == 2
            });
        }
    }
}

/// Runs the rendered start scripts for a 3-pod deployment on this machine and checks that replication and
/// Sentinel work, with a password that has every special character the config allows.
#[test]
fn start_scripts_run_a_replicated_three_pod_deployment() {
    let mut sb = Sandbox::new("pods");
    let pw = "Pw!#$%&()*+,-./:;<=>?@[]^_`{|}~09";
    let three = ThreePods::new(&sb, pw);
    let (app, port, sentinel_port) = (three.app, three.port, three.sentinel_port);
    let pods = &three.pods;
    let start = |sb: &mut Sandbox, pod: &TestPod, which: &str| three.start(sb, pod.ordinal as usize, which);

    // A fresh deployment: every container starts at once. No Sentinel knows a primary yet, so ordinal 0 is it.
    for pod in pods {
        start(&mut sb, pod, "sentinel");
        start(&mut sb, pod, "redis");
    }
    let primary = pods[0].redis(port);
    sb.wait_until("the primary", || resp::ping(&primary, Some(pw), T).is_ok());
    for pod in &pods[1..] {
        sb.wait_until(&format!("pod {} to replicate from pod 0", pod.ordinal), || {
            is_replica_of(&pod.redis(port), pw, &pods[0].host)
        });
    }
    assert_eq!(resp::info_field(&info(&primary, pw), "role"), Some("master"));

    // A write on the primary is readable on both replicas; replicas refuse writes; auth is required everywhere.
    assert_eq!(get(&primary, Some(pw), &["SET", "greeting", "hello"]), Some(Resp::Simple("OK".into())));
    for pod in &pods[1..] {
        let replica = pod.redis(port);
        sb.wait_until("the write to reach the replica", || {
            get(&replica, Some(pw), &["GET", "greeting"]) == Some(Resp::Bulk(b"hello".to_vec()))
        });
        assert!(
            matches!(get(&replica, Some(pw), &["SET", "x", "y"]), Some(Resp::Error(e)) if e.starts_with("READONLY"))
        );
        assert!(matches!(get(&replica, None, &["GET", "greeting"]), Some(Resp::Error(e)) if e.starts_with("NOAUTH")));
    }

    // Every Sentinel names pod 0, knows both replicas by their announced names, and sees the two other
    // Sentinels over authenticated links.
    for pod in pods {
        let sentinel = format!("{}:{sentinel_port}", pod.host);
        sb.wait_until("the Sentinel", || sentinel_says(&sentinel, pw, app) == Some((pods[0].host.clone(), port)));
        sb.wait_until("the Sentinel to see both replicas", || {
            let reply = get(&sentinel, Some(pw), &["SENTINEL", "REPLICAS", app]);
            let mut hosts: Vec<String> = match reply {
                Some(Resp::Array(replicas)) => replicas
                    .iter()
                    .filter_map(|r| resp_map(r).into_iter().find(|(k, _)| k == "ip").map(|(_, v)| v))
                    .collect(),
                _ => Vec::new(),
            };
            hosts.sort();
            hosts == [pods[1].host.clone(), pods[2].host.clone()]
        });
        // Sentinels find each other through hello messages on the primary (every 2 s) and clear a peer's
        // s_down only on its next reply: on a loaded two-CPU host that has taken more than 15 s.
        sb.wait_up_to(30, "the Sentinel to see the two others, connected", || {
            match get(&sentinel, Some(pw), &["SENTINEL", "SENTINELS", app]) {
                Some(Resp::Array(peers)) => {
                    peers.len() == 2
                        && peers.iter().all(|p| {
                            resp_map(p)
                                .iter()
                                .any(|(k, v)| k == "flags" && !v.contains("disconnected") && !v.contains("s_down"))
                        })
                }
                _ => false,
            }
        });
    }

    // Fail over to a replica, then restart pod 0's Redis: its script must ask the peer Sentinels and come back
    // as a replica of the new primary, not as a second primary.
    let sentinel1 = format!("{}:{sentinel_port}", pods[1].host);
    // Sentinel refuses (NOGOODSLAVE) until it has had INFO from the replicas themselves: retry.
    sb.wait_until("Sentinel to accept a failover", || {
        get(&sentinel1, Some(pw), &["SENTINEL", "FAILOVER", app]) == Some(Resp::Simple("OK".into()))
    });
    let mut new_primary = None;
    sb.wait_until("the failover", || {
        new_primary = pods[1..].iter().find(|p| resp::info_field(&info(&p.redis(port), pw), "role") == Some("master"));
        new_primary.is_some_and(|p| {
            pods.iter()
                .all(|s| sentinel_says(&format!("{}:{sentinel_port}", s.host), pw, app) == Some((p.host.clone(), port)))
        })
    });
    let new_primary = new_primary.unwrap();
    sb.kill("pod0-redis");
    start(&mut sb, &pods[0], "redis");
    sb.wait_until("pod 0 to come back as a replica of the new primary", || {
        is_replica_of(&pods[0].redis(port), pw, &new_primary.host)
    });
    assert_eq!(get(&pods[0].redis(port), Some(pw), &["GET", "greeting"]), Some(Resp::Bulk(b"hello".to_vec())));
    let log = std::fs::read_to_string(sb.dir.join("pod0-redis.log")).unwrap();
    assert!(log.contains(&format!("names {}:{port} as the primary", new_primary.host)), "{log}");
    // The password never reached a log.
    assert!(!sb.logs().contains(pw));
}

/// A replica left following a server that is gone follows the primary the Sentinels name once its link has
/// been down for a while. Here pod 2 is pointed at pod 0 on a port nothing listens on: what a replica does that
/// started while no peer answered and took ordinal 0 on the next port, which a rolling port change has not
/// reached yet. (The Sentinels would correct a replica they know only after their 30 s failover timeout, and
/// one they do not know, like that new pod, never: the script's own watch is what relinks it here.)
#[test]
fn a_replica_whose_primary_is_gone_follows_the_one_the_sentinels_name() {
    let mut sb = Sandbox::new("relink");
    let three = ThreePods::new(&sb, "relink-password-0123456789");
    three.start_all_and_settle(&mut sb);
    let (pw, port) = (three.pw, three.port);
    let (primary, replica) = (&three.pods[0], three.pods[2].redis(port));
    assert_eq!(get(&primary.redis(port), Some(pw), &["SET", "before", "1"]), Some(Resp::Simple("OK".into())));
    let gone = free_port().to_string();
    assert_eq!(get(&replica, Some(pw), &["REPLICAOF", &primary.host, &gone]), Some(Resp::Simple("OK".into())));
    sb.wait_until("the link to go down", || {
        let text = info(&replica, pw);
        resp::info_field(&text, "master_port") == Some(gone.as_str())
            && resp::info_field(&text, "master_link_status") == Some("down")
    });
    assert_eq!(get(&primary.redis(port), Some(pw), &["SET", "while-away", "2"]), Some(Resp::Simple("OK".into())));
    // Three checks 3 s apart find it down, then the watch follows the primary: well inside 25 s.
    sb.wait_up_to(25, "the replica to follow pod 0 on its port again", || {
        is_replica_of(&replica, pw, &primary.host)
            && resp::info_field(&info(&replica, pw), "master_port") == Some(port.to_string().as_str())
    });
    sb.wait_until("the write made while it was away", || {
        get(&replica, Some(pw), &["GET", "while-away"]) == Some(Resp::Bulk(b"2".to_vec()))
    });
    let log = std::fs::read_to_string(sb.dir.join("pod2-redis.log")).unwrap();
    let line = format!("the Sentinels name {}:{port}: following it", primary.host);
    assert!(log.contains(&line), "{log}");
    // The primary and the other replica were left alone.
    assert!(!std::fs::read_to_string(sb.dir.join("pod1-redis.log")).unwrap().contains("following it"));
    assert_eq!(resp::info_field(&info(&primary.redis(port), pw), "role"), Some("master"));
}

/// A pod that starts while its peers are there but too slow to answer (an overloaded node) asks again rather
/// than taking ordinal 0 as the primary. Here a replica was promoted, and while the third pod's Redis restarts
/// the new primary and the two other Sentinels are stopped (SIGSTOP) for 12 s: longer than the first round of
/// questions takes (3 s for each that goes unanswered), so it finds no primary.
#[test]
fn a_pod_that_starts_while_its_peers_are_too_slow_to_answer_asks_again() {
    let mut sb = Sandbox::new("stalled");
    let three = ThreePods::new(&sb, "stalled-password-0123456789");
    three.start_all_and_settle(&mut sb);
    let (pw, port, app, pods) = (three.pw, three.port, three.app, &three.pods);
    sb.wait_until("Sentinel to accept a failover", || {
        get(&three.sentinel(1), Some(pw), &["SENTINEL", "FAILOVER", app]) == Some(Resp::Simple("OK".into()))
    });
    let mut promoted = 0;
    sb.wait_until("the failover, seen by every Sentinel", || {
        promoted =
            (1..3).find(|&i| resp::info_field(&info(&pods[i].redis(port), pw), "role") == Some("master")).unwrap_or(0);
        promoted != 0
            && (0..3).all(|i| sentinel_says(&three.sentinel(i), pw, app) == Some((pods[promoted].host.clone(), port)))
    });
    let other = 3 - promoted;
    // Sentinel turns the old primary into a replica only once it has reported the wrong role for a while
    // (sentinel.c: SENTINEL_PUBLISH_PERIOD * 4, after the failover's own steps): more than 15 s on a loaded host.
    sb.wait_up_to(40, "pod 0 and the other replica to follow the new primary", || {
        [0, other].iter().all(|&i| is_replica_of(&pods[i].redis(port), pw, &pods[promoted].host))
    });
    sb.kill(&format!("pod{other}-redis"));
    let log_path = sb.dir.join(format!("pod{other}-redis.log"));
    let before = std::fs::metadata(&log_path).map(|m| m.len() as usize).unwrap_or(0);
    let stalled = [format!("pod{promoted}-redis"), format!("pod{promoted}-sentinel"), "pod0-sentinel".to_owned()];
    for name in &stalled {
        sb.signal(name, libc::SIGSTOP);
    }
    three.start(&mut sb, other, "redis");
    std::thread::sleep(Duration::from_secs(12));
    for name in &stalled {
        sb.signal(name, libc::SIGCONT);
    }
    sb.wait_up_to(40, "the restarted pod to follow the new primary", || {
        is_replica_of(&pods[other].redis(port), pw, &pods[promoted].host)
    });
    // Only what the restarted pod logged: its first start, on a fresh deployment, rightly chose ordinal 0.
    let log = std::fs::read_to_string(&log_path).unwrap().split_off(before);
    assert!(log.contains("did not answer in time: asking the peers again"), "{log}");
    assert!(!log.contains("so ordinal 0"), "{log}");
}

/// The readiness probe asks the port it is given (its pod template's), not the one the refreshed files name:
/// during a rolling port change an old pod stays ready on its old port.
#[test]
fn the_readiness_probe_asks_the_port_of_its_template() {
    let mut sb = Sandbox::new("ready");
    let three = ThreePods::new(&sb, "ready-password-0123456789");
    three.start_all_and_settle(&mut sb);
    let pod = &three.pods[1];
    let probe = |port: &str| {
        let script = format!("{}/conf/start-redis.sh", pod.dir);
        let mut cmd = std::process::Command::new("sh");
        cmd.arg(&script).arg("ready");
        if !port.is_empty() {
            cmd.arg(port);
        }
        cmd.env("REDIS_K8S_POD_NAME", format!("{}-1", three.app))
            .env("REDIS_K8S_HOST_PREFIX", &three.prefix)
            .env("REDIS_K8S_HOST_SUFFIX", "");
        cmd.output().unwrap().status.code()
    };
    assert_eq!(probe(""), Some(0), "a linked replica is ready");
    assert_eq!(probe(&three.port.to_string()), Some(0));
    assert_eq!(probe(&free_port().to_string()), Some(1), "nothing listens there");
    assert_eq!(probe("not-a-port"), Some(1));
    drop(sb);
}

/// A client that writes `key:<i>` = `<i>` in a loop to whichever pod is the primary, following a failover the
/// way a Sentinel-aware client does (on an error, it asks the Sentinels again), and records every write the
/// server acknowledged.
struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<(Vec<u64>, u64)>>,
}

impl Writer {
    fn start(three: &ThreePods) -> Writer {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let pw = three.pw;
        let app = three.app;
        let sentinels: Vec<String> = (0..3).map(|i| three.sentinel(i)).collect();
        let port = three.port;
        let mut primary = three.pods[0].redis(port);
        let handle = std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut errors = 0u64;
            let mut i = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let key = format!("key:{i}");
                let value = i.to_string();
                match resp::query(&primary, Some(pw), &["SET", &key, &value], Duration::from_secs(2)) {
                    Ok(Resp::Simple(ok)) if ok == "OK" => {
                        acked.push(i);
                        i += 1;
                    }
                    _ => {
                        errors += 1;
                        if let Some((host, p)) =
                            resp::sentinel_primary(&sentinels, app, Some(pw), Duration::from_millis(500))
                        {
                            primary = format!("{host}:{p}");
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
            (acked, errors)
        });
        Writer { stop, handle: Some(handle) }
    }

    /// Stops the client: the writes the server acknowledged, and how many commands failed.
    fn finish(mut self) -> (Vec<u64>, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.take().map(|h| h.join().unwrap()).unwrap_or_default()
    }
}

/// Stopping the primary's pod (SIGTERM to its start script, as Kubernetes sends it on a rolling restart or a
/// scale-down) hands the primary over to a replica first: under a steady stream of writes, every write the old
/// primary acknowledged is on the new one.
#[test]
fn a_stopping_primary_hands_over_without_losing_acknowledged_writes() {
    let mut sb = Sandbox::new("handover");
    let three = ThreePods::new(&sb, "handover-password-0123456789");
    three.start_all_and_settle(&mut sb);
    let writer = Writer::start(&three);
    let (pw, port) = (three.pw, three.port);
    sb.wait_until(
        "some writes",
        || matches!(get(&three.pods[0].redis(port), Some(pw), &["DBSIZE"]), Some(Resp::Integer(n)) if n > 200),
    );
    let status = sb.terminate("pod0-redis", Duration::from_secs(30));
    assert_eq!(status.map(|s| s.code()), Some(Some(0)), "the script exits 0 within the grace period\n{}", sb.logs());
    let mut new_primary = None;
    sb.wait_until("a replica to be the primary", || {
        new_primary =
            three.pods[1..].iter().find(|p| resp::info_field(&info(&p.redis(port), pw), "role") == Some("master"));
        new_primary.is_some()
    });
    let new_primary = new_primary.unwrap().redis(port);
    sb.wait_until("writes on the new primary", || {
        let before = get(&new_primary, Some(pw), &["DBSIZE"]);
        std::thread::sleep(Duration::from_millis(200));
        matches!((before, get(&new_primary, Some(pw), &["DBSIZE"])), (Some(Resp::Integer(a)), Some(Resp::Integer(b))) if b > a)
    });
    let (acked, errors) = writer.finish();
    let missing: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|i| {
            get(&new_primary, Some(pw), &["GET", &format!("key:{i}")]) != Some(Resp::Bulk(i.to_string().into_bytes()))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost: {:?}\n{}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(20)],
        sb.logs()
    );
    let log = std::fs::read_to_string(sb.dir.join("pod0-redis.log")).unwrap();
    assert!(log.contains("handed the primary over to"), "{log}");
    eprintln!("hand-over: {} writes acknowledged, {} commands refused or unanswered during it", acked.len(), errors);
}

/// A primary stopped just after the other pods were replaced (as a rolling restart replaces the pods before
/// it, moving on once they are ready) still hands over: those Sentinels refuse a failover until they have heard from a replica, so the
/// script asks again until one accepts.
#[test]
fn a_stopping_primary_hands_over_to_sentinels_that_have_just_started() {
    let mut sb = Sandbox::new("handover-fresh");
    let three = ThreePods::new(&sb, "handover-fresh-password-0123456789");
    three.start_all_and_settle(&mut sb);
    let (pw, port) = (three.pw, three.port);
    assert_eq!(get(&three.pods[0].redis(port), Some(pw), &["SET", "k", "v"]), Some(Resp::Simple("OK".into())));
    // Pods 1 and 2 replaced: their Sentinels ask the primary for its replicas at once, before the restarted
    // replicas have linked, and ask again only 10 s later.
    for i in 1..3 {
        sb.kill(&format!("pod{i}-redis"));
        sb.kill(&format!("pod{i}-sentinel"));
    }
    for i in 1..3 {
        three.start(&mut sb, i, "sentinel");
        three.start(&mut sb, i, "redis");
    }
    for pod in &three.pods[1..] {
        sb.wait_until("the replaced replica to link (ready)", || {
            is_replica_of(&pod.redis(port), pw, &three.pods[0].host)
        });
    }
    let status = sb.terminate("pod0-redis", Duration::from_secs(30));
    assert_eq!(status.map(|s| s.code()), Some(Some(0)), "{}", sb.logs());
    let log = std::fs::read_to_string(sb.dir.join("pod0-redis.log")).unwrap();
    assert!(log.contains("handed the primary over to"), "{}", sb.logs());
    let new_primary = three.pods[1..]
        .iter()
        .find(|p| resp::info_field(&info(&p.redis(port), pw), "role") == Some("master"))
        .unwrap_or_else(|| panic!("no replica was promoted\n{}", sb.logs()));
    assert_eq!(get(&new_primary.redis(port), Some(pw), &["GET", "k"]), Some(Resp::Bulk(b"v".to_vec())));
}

/// The scripts as the pod receives them (settings and common.sh written in) pass shellcheck.
#[test]
fn rendered_scripts_pass_shellcheck() {
    let sb = Sandbox::new("shellcheck");
    let mut files = Vec::new();
    for (i, cfg) in all_configs().iter().enumerate() {
        for (name, text) in Rendered::new(cfg, &topo(3), &POD).unwrap().files {
            if name.ends_with(".sh") {
                let path = sb.dir.join(format!("{i}-{name}"));
                std::fs::write(&path, text).unwrap();
                files.push(path);
            }
        }
    }
    let out = std::process::Command::new("shellcheck")
        .args(["-s", "sh"])
        .args(&files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run shellcheck ({e}); `make setup` installs it"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
