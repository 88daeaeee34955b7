//! Typed failures of hook-tool calls.
//!
//! Juju's hook tools exit 0 on success, 1 on a runtime error and 2 on bad flags or arguments, with
//! `ERROR <message>` on stderr (reference §0.6). Every failure a charm can meet while calling one is a
//! variant here, so callers decide on meaning, never on stderr text, and the hook's one-line error names
//! the tool and Juju's own words.

use std::fmt;
use std::time::Duration;

/// Why a hook-tool call did not give a usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    /// Exit 1: the tool ran and refused (`ERROR this unit is not the leader`).
    Runtime { tool: String, message: String },
    /// Exit 2: the tool rejected its flags or arguments.
    Usage { tool: String, message: String },
    /// Any other exit status, or death by a signal.
    Failed { tool: String, status: String, message: String },
    /// The tool is not on `PATH` (not in a hook context, or an older Juju).
    Missing { tool: String },
    /// The tool could not be started, or its pipes failed.
    Io { tool: String, message: String },
    /// The tool ran longer than the charm's limit and was killed.
    Timeout { tool: String, after: Duration },
    /// The tool exited 0 but printed something that is not what its contract promises.
    BadOutput { tool: String, detail: String },
}

impl ToolError {
    /// The tool this error is about.
    pub fn tool(&self) -> &str {
        match self {
            ToolError::Runtime { tool, .. }
            | ToolError::Usage { tool, .. }
            | ToolError::Failed { tool, .. }
            | ToolError::Missing { tool }
            | ToolError::Io { tool, .. }
            | ToolError::Timeout { tool, .. }
            | ToolError::BadOutput { tool, .. } => tool,
        }
    }

    /// Builds the error for a finished process from its exit code and stderr.
    pub fn from_exit(tool: &str, code: Option<i32>, stderr: &[u8]) -> ToolError {
        let message = error_line(stderr);
        let tool = tool.to_string();
        match code {
            Some(1) => ToolError::Runtime { tool, message },
            Some(2) => ToolError::Usage { tool, message },
            Some(n) => ToolError::Failed { tool, status: format!("exit status {n}"), message },
            None => ToolError::Failed { tool, status: "killed by a signal".into(), message },
        }
    }
}

/// The line of stderr worth showing: the last `ERROR …` line if there is one, else the last non-empty
/// line, else a placeholder. Juju's tools print exactly one `ERROR` line; anything else is noise.
fn error_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let pick = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("ERROR"))
        .or_else(|| lines.last())
        .copied()
        .unwrap_or("(no error message)");
    // One line, bounded: a hook's error must fit on one line of `juju debug-log`.
    let mut line: String = pick.chars().take(400).collect();
    if pick.chars().count() > 400 {
        line.push('…');
    }
    line
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolError::Runtime { tool, message } => write!(f, "{tool} failed: {message}"),
            ToolError::Usage { tool, message } => write!(f, "{tool} rejected its arguments: {message}"),
            ToolError::Failed { tool, status, message } => write!(f, "{tool} failed ({status}): {message}"),
            ToolError::Missing { tool } => {
                write!(f, "{tool} not found on PATH (is this running in a Juju hook context?)")
            }
            ToolError::Io { tool, message } => write!(f, "{tool} could not be run: {message}"),
            ToolError::Timeout { tool, after } => {
                write!(f, "{tool} did not finish within {}s and was killed", after.as_secs())
            }
            ToolError::BadOutput { tool, detail } => write!(f, "{tool} gave unusable output: {detail}"),
        }
    }
}

impl std::error::Error for ToolError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_map_to_variants_and_keep_the_error_line() {
        let e = ToolError::from_exit("pod-spec-set", Some(1), b"ERROR this unit is not the leader\n");
        assert_eq!(e.to_string(), "pod-spec-set failed: ERROR this unit is not the leader");
        let e = ToolError::from_exit("status-set", Some(2), b"some usage\nERROR invalid status \"x\"\n");
        assert!(matches!(e, ToolError::Usage { .. }));
        assert!(e.to_string().ends_with("ERROR invalid status \"x\""));
        let e = ToolError::from_exit("config-get", Some(3), b"panic: boom\n");
        assert_eq!(e.to_string(), "config-get failed (exit status 3): panic: boom");
        let e = ToolError::from_exit("config-get", None, b"");
        assert_eq!(e.to_string(), "config-get failed (killed by a signal): (no error message)");
    }

    #[test]
    fn error_line_is_bounded_and_single() {
        let long = format!("ERROR {}\n", "x".repeat(1000));
        let e = ToolError::from_exit("t", Some(1), long.as_bytes());
        let s = e.to_string();
        assert!(!s.contains('\n'));
        assert!(s.chars().count() < 420);
    }
}
