//! A steady client load on a running deployment, for day-2 tests and the day-2 benchmark: a writer that sends
//! `SET <prefix>:<i> <i>` at a fixed rate to wherever its [`Route`] says the primary is, follows it when a command
//! fails (the way a client re-reads its relation data or asks Sentinel again), and records every write the server
//! acknowledged; [`Report::lost`] then reads them all back from the primary.
//!
//! What it measures is what a client sees: commands that failed, the longest time without an acknowledged write
//! while it kept trying (the outage), and acknowledged writes that are gone afterwards (lost).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis_k8s::redis::resp::{self, Resp};

/// Where to send the next command: `host:port` (already resolved) and the password to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: String,
    pub password: Option<String>,
}

/// Finds the target; called at the start and after every failed command (`None`: not known right now).
pub type Route = Arc<dyn Fn() -> Option<Target> + Send + Sync>;

/// What a load saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub name: String,
    /// The indexes of the writes the server acknowledged.
    pub acked: Vec<u64>,
    pub attempts: u64,
    pub failed: u64,
    /// The longest stretch without an acknowledged write while commands failed.
    pub longest_outage: Duration,
    /// A few of the errors seen (first ones), for messages.
    pub errors: Vec<String>,
    pub prefix: String,
}

impl Report {
    /// The acknowledged writes that `read` (a GET on the current primary) no longer finds.
    pub fn lost(&self, read: impl Fn(&[String]) -> Option<Vec<Option<String>>>) -> Vec<u64> {
        let mut lost = Vec::new();
        for chunk in self.acked.chunks(200) {
            let keys: Vec<String> = chunk.iter().map(|i| format!("{}:{i}", self.prefix)).collect();
            match read(&keys) {
                Some(values) => {
                    for (i, v) in chunk.iter().zip(values) {
                        if v.as_deref() != Some(i.to_string().as_str()) {
                            lost.push(*i);
                        }
                    }
                }
                None => lost.extend_from_slice(chunk),
            }
        }
        lost
    }

    /// One line: attempts, failures, outage.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} writes acknowledged of {} attempts, {} failed, longest outage {} ms{}",
            self.name,
            self.acked.len(),
            self.attempts,
            self.failed,
            self.longest_outage.as_millis(),
            if self.errors.is_empty() {
                String::new()
            } else {
                format!(" (first errors: {})", self.errors.join(" | "))
            }
        )
    }
}

/// A running load; [`Load::finish`] stops it.
pub struct Load {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Report>>,
    progress: Arc<Mutex<u64>>,
}

impl Load {
    /// Starts writing `<prefix>:<i>` every `1/rate` seconds, asking `route` again after a failure.
    pub fn start(name: &str, prefix: &str, rate_per_sec: u32, route: Route) -> Load {
        Load::start_refreshing(name, prefix, rate_per_sec, route, None)
    }

    /// Like [`Load::start`], also asking `route` again every `refresh` (a client charm that acts on its
    /// relation-changed hooks picks up new relation data within a moment).
    pub fn start_refreshing(
        name: &str,
        prefix: &str,
        rate_per_sec: u32,
        route: Route,
        refresh: Option<Duration>,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Mutex::new(0));
        let (flag, counter) = (stop.clone(), progress.clone());
        let (name, prefix) = (name.to_string(), prefix.to_string());
        let period = Duration::from_secs(1) / rate_per_sec.max(1);
        let handle = std::thread::spawn(move || {
            let mut report = Report { name, prefix: prefix.clone(), ..Default::default() };
            let mut target = route();
            let mut i = 0u64;
            let mut last_ok = Instant::now();
            let mut failing_since: Option<Instant> = None;
            let mut next = Instant::now();
            let mut refreshed = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                if refresh.is_some_and(|r| refreshed.elapsed() >= r) {
                    refreshed = Instant::now();
                    if let Some(t) = route() {
                        target = Some(t);
                    }
                }
                let now = Instant::now();
                if now < next {
                    std::thread::sleep(next - now);
                }
                next += period;
                report.attempts += 1;
                let outcome = match &target {
                    Some(t) => {
                        let (key, value) = (format!("{prefix}:{i}"), i.to_string());
                        resp::query(&t.addr, t.password.as_deref(), &["SET", &key, &value], Duration::from_secs(1))
                            .map_err(|e| format!("{e:#}"))
                            .and_then(|r| match r {
                                Resp::Simple(ok) if ok == "OK" => Ok(()),
                                other => Err(format!("{other:?}")),
                            })
                    }
                    None => Err("no target known".to_string()),
                };
                match outcome {
                    Ok(()) => {
                        report.acked.push(i);
                        i += 1;
                        *counter.lock().unwrap() = i;
                        if let Some(since) = failing_since.take() {
                            report.longest_outage = report.longest_outage.max(Instant::now() - since.min(last_ok));
                        }
                        last_ok = Instant::now();
                    }
                    Err(e) => {
                        report.failed += 1;
                        if report.errors.len() < 3 {
                            report.errors.push(e);
                        }
                        failing_since.get_or_insert(last_ok);
                        target = route();
                    }
                }
            }
            if let Some(since) = failing_since {
                report.longest_outage = report.longest_outage.max(Instant::now() - since);
            }
            report
        });
        Load { stop, handle: Some(handle), progress }
    }

    /// How many writes have been acknowledged so far.
    pub fn acknowledged(&self) -> u64 {
        *self.progress.lock().unwrap()
    }

    /// Waits (bounded) until at least `n` more writes have been acknowledged than now.
    pub fn wait_for_progress(&self, n: u64, within: Duration) -> bool {
        let start = self.acknowledged();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.acknowledged() >= start + n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn finish(mut self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().map(|h| h.join().expect("the load thread")).unwrap_or_default()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// MGET on `addr`: the values of `keys` (`None` for a missing key), or `None` when the server does not answer.
pub fn mget(addr: &str, password: Option<&str>, keys: &[String]) -> Option<Vec<Option<String>>> {
    let mut cmd: Vec<&str> = vec!["MGET"];
    cmd.extend(keys.iter().map(String::as_str));
    match resp::query(addr, password, &cmd, Duration::from_secs(5)).ok()? {
        Resp::Array(items) => Some(items.iter().map(|v| v.as_str().map(str::to_string)).collect()),
        _ => None,
    }
}
