//! Changes and tasks (canonical/pebble `internals/overlord/state/change.go`, `task.go`, and the JSON of
//! `internals/daemon/api_changes.go` `change2changeInfo`): sequential ids (`"1"`, `"2"`, … for changes, a
//! separate counter for tasks), a change's status derived from its tasks' by Pebble's priority order
//! (`statusOrder`), `Change.Err`'s "cannot perform the following tasks" text built from the tasks' `ERROR` log
//! lines, and task logs stamped like `Task.addLog` (RFC 3339, at most the last 10 entries).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// A task's status (`state.Status`), the subset the stand-in uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Do,
    Doing,
    Done,
    Error,
    Hold,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Do => "Do",
            Status::Doing => "Doing",
            Status::Done => "Done",
            Status::Error => "Error",
            Status::Hold => "Hold",
        }
    }

    /// `Status.Ready`: Done, Error and Hold are final.
    pub fn ready(self) -> bool {
        matches!(self, Status::Done | Status::Error | Status::Hold)
    }
}

#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub kind: String,
    pub summary: String,
    pub status: Status,
    pub log: Vec<String>,
    pub spawn_time: SystemTime,
    pub ready_time: Option<SystemTime>,
}

#[derive(Debug, Clone)]
pub struct Change {
    pub id: String,
    pub kind: String,
    pub summary: String,
    pub tasks: Vec<Task>,
    /// A status set directly (`Change.SetStatus`), e.g. Done for a change with no tasks.
    pub set_status: Option<Status>,
    pub spawn_time: SystemTime,
    pub ready_time: Option<SystemTime>,
}

/// `statusOrder` (change.go): the first status any task has, in this order, is the change's.
const STATUS_ORDER: [Status; 5] = [Status::Doing, Status::Do, Status::Error, Status::Done, Status::Hold];

impl Change {
    /// `Change.Status`.
    pub fn status(&self) -> Status {
        if let Some(s) = self.set_status {
            return s;
        }
        if self.tasks.is_empty() {
            return Status::Hold;
        }
        for s in STATUS_ORDER {
            if self.tasks.iter().any(|t| t.status == s) {
                return s;
            }
        }
        Status::Hold
    }

    pub fn ready(&self) -> bool {
        self.status().ready()
    }

    /// `Change.Err`: one line per error logged by a task in Error.
    pub fn err(&self) -> Option<String> {
        if self.status() != Status::Error {
            return None;
        }
        let mut lines = Vec::new();
        for task in self.tasks.iter().filter(|t| t.status == Status::Error) {
            for entry in &task.log {
                if let Some(at) = entry.find(' ')
                    && let Some(msg) = entry[at..].strip_prefix(" ERROR ")
                {
                    lines.push(format!("- {} ({msg})", task.summary));
                }
            }
        }
        if lines.is_empty() {
            return Some(format!(
                "internal inconsistency: change {:?} in ErrorStatus with no task errors logged",
                self.kind
            ));
        }
        Some(format!("cannot perform the following tasks:\n{}", lines.join("\n")))
    }

    /// `change2changeInfo`.
    pub fn to_json(&self) -> Value {
        let status = self.status();
        let mut info = json!({
            "id": self.id,
            "kind": self.kind,
            "summary": self.summary,
            "status": status.as_str(),
            "ready": status.ready(),
            "spawn-time": rfc3339(self.spawn_time, true),
        });
        if let Some(t) = self.ready_time {
            info["ready-time"] = json!(rfc3339(t, true));
        }
        if let Some(err) = self.err() {
            info["err"] = json!(err);
        }
        if !self.tasks.is_empty() {
            let tasks: Vec<Value> = self
                .tasks
                .iter()
                .map(|t| {
                    let mut task = json!({
                        "id": t.id,
                        "kind": t.kind,
                        "summary": t.summary,
                        "status": t.status.as_str(),
                        // Task.Progress with no progress reported: 1 of 1 once ready, else 0 of 1.
                        "progress": {"label": "", "done": if t.status.ready() { 1 } else { 0 }, "total": 1},
                        "spawn-time": rfc3339(t.spawn_time, true),
                    });
                    if !t.log.is_empty() {
                        task["log"] = json!(t.log);
                    }
                    if let Some(r) = t.ready_time {
                        task["ready-time"] = json!(rfc3339(r, true));
                    }
                    task
                })
                .collect();
            info["tasks"] = Value::Array(tasks);
        }
        info
    }
}

/// Every change the daemon made, in order.
#[derive(Debug, Default)]
pub struct Changes {
    last_change: u64,
    last_task: u64,
    pub list: Vec<Change>,
}

impl Changes {
    /// `State.NewChange` with one `NewTask` per `(kind, summary)`; returns the change id and the task ids.
    pub fn add(&mut self, kind: &str, summary: &str, tasks: &[(String, String)]) -> (String, Vec<String>) {
        self.last_change += 1;
        let now = SystemTime::now();
        let mut made = Vec::new();
        for (kind, summary) in tasks {
            self.last_task += 1;
            made.push(Task {
                id: self.last_task.to_string(),
                kind: kind.clone(),
                summary: summary.clone(),
                status: Status::Do,
                log: Vec::new(),
                spawn_time: now,
                ready_time: None,
            });
        }
        let ids = made.iter().map(|t| t.id.clone()).collect();
        let change = Change {
            id: self.last_change.to_string(),
            kind: kind.to_string(),
            summary: summary.to_string(),
            tasks: made,
            set_status: None,
            spawn_time: now,
            ready_time: None,
        };
        let id = change.id.clone();
        self.list.push(change);
        (id, ids)
    }

    pub fn get(&self, id: &str) -> Option<&Change> {
        self.list.iter().find(|c| c.id == id)
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut Change> {
        self.list.iter_mut().find(|c| c.id == id)
    }

    /// Sets a change's status directly (`Change.SetStatus`).
    pub fn set_change_status(&mut self, id: &str, status: Status) {
        if let Some(c) = self.get_mut(id) {
            c.set_status = Some(status);
            if status.ready() && c.ready_time.is_none() {
                c.ready_time = Some(SystemTime::now());
            }
        }
    }

    /// Sets a task's status, and the change's ready time once every task is ready.
    pub fn set_task_status(&mut self, change: &str, task: &str, status: Status) {
        let Some(c) = self.get_mut(change) else { return };
        if let Some(t) = c.tasks.iter_mut().find(|t| t.id == task) {
            t.status = status;
            if status.ready() && t.ready_time.is_none() {
                t.ready_time = Some(SystemTime::now());
            }
        }
        if c.ready() && c.ready_time.is_none() {
            c.ready_time = Some(SystemTime::now());
        }
    }

    /// `Task.Logf` (`INFO`) or `Task.Errorf` (`ERROR`), keeping the last 10 entries.
    pub fn log(&mut self, change: &str, task: &str, kind: &str, message: &str) {
        let Some(c) = self.get_mut(change) else { return };
        if let Some(t) = c.tasks.iter_mut().find(|t| t.id == task) {
            if t.log.len() > 9 {
                let cut = t.log.len() - 9;
                t.log.drain(..cut);
            }
            t.log.push(format!("{} {kind} {message}", rfc3339(SystemTime::now(), false)));
        }
    }
}

/// A time in RFC 3339, UTC, with nanoseconds (Go's JSON of a `time.Time`) or without (`time.RFC3339`).
pub fn rfc3339(t: SystemTime, nanos: bool) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = crate::util::civil_date(days);
    let mut out = format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", rem / 3600, (rem / 60) % 60, rem % 60);
    if nanos && d.subsec_nanos() > 0 {
        let mut frac = format!("{:09}", d.subsec_nanos());
        while frac.ends_with('0') {
            frac.pop();
        }
        out.push('.');
        out.push_str(&frac);
    }
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn change_status_follows_pebbles_priority() {
        let mut changes = Changes::default();
        let tasks =
            [("start".to_string(), "Start service \"a\"".to_string()), ("start".into(), "Start service \"b\"".into())];
        let (id, t) = changes.add("replan", "Replan service \"a\" and 1 more", &tasks);
        assert_eq!(changes.get(&id).unwrap().status(), Status::Do);
        changes.set_task_status(&id, &t[0], Status::Error);
        changes.log(&id, &t[0], "ERROR", "service start attempt: exited quickly with code 1, will restart");
        assert_eq!(changes.get(&id).unwrap().status(), Status::Do);
        changes.set_task_status(&id, &t[1], Status::Done);
        let c = changes.get(&id).unwrap();
        assert_eq!(c.status(), Status::Error);
        assert_eq!(
            c.err().unwrap(),
            "cannot perform the following tasks:\n- Start service \"a\" (service start attempt: exited quickly with code 1, will restart)"
        );
    }

    #[test]
    fn times_are_rfc3339() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(250);
        assert_eq!(rfc3339(t, true), "2023-11-14T22:13:20.25Z");
        assert_eq!(rfc3339(t, false), "2023-11-14T22:13:20Z");
    }
}
