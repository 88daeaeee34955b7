//! File pushes, `POST /v1/files` with `multipart/form-data` (canonical/pebble `internals/daemon/api_files.go`
//! `v1PostFiles`, `writeFiles`, `writeFile`, `parsePermissions`, `fileErrorToResult`): a `request` part
//! `{"action": "write", "files": [{"path", "make-dirs", "permissions", …}]}` then one `files` part per file
//! whose `filename` is the path. Each file gets a result; a file that cannot be written is an error in its
//! result (`kind` `not-found`, `permission-denied` or `generic-file-error`), not in the envelope. Paths must be
//! absolute; `make-dirs` creates missing parents with mode 0755; permissions are a 3-digit octal string
//! (default 0644); the content is written to a temporary file beside the target and renamed over it.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde_json::{Value, json};

use super::golib::quote;

/// `minBoundaryLength`.
const MIN_BOUNDARY_LENGTH: usize = 32;

/// What the handler answers: a result for a sync response, or a 400 message.
pub type Answer = Result<Value, String>;

/// The boundary of a `multipart/form-data` Content-Type, or the 400 Pebble answers.
pub fn boundary(content_type: &str) -> Result<String, String> {
    let mut parts = content_type.split(';').map(str::trim);
    let media = parts.next().unwrap_or_default().to_ascii_lowercase();
    if media == "application/json" {
        return Err("juju-local's Pebble supports only the multipart \"write\" action of /v1/files".into());
    }
    if media != "multipart/form-data" {
        return Err(format!("invalid media type {}", quote(&media)));
    }
    let boundary = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .unwrap_or_default();
    if boundary.len() < MIN_BOUNDARY_LENGTH {
        return Err(format!("invalid boundary {}", quote(&boundary)));
    }
    Ok(boundary)
}

/// One part: its form name, filename, and content.
struct Part {
    name: String,
    filename: Option<String>,
    body: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// A Content-Disposition parameter, unquoted (Go's `mime.ParseMediaType`, close enough).
fn disposition_param(header: &str, key: &str) -> Option<String> {
    let mut rest = header.split_once(';')?.1;
    while !rest.trim().is_empty() {
        let (k, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            out.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => out.push(c),
                }
            }
            (out, q[end..].split_once(';').map(|(_, r)| r).unwrap_or(""))
        } else {
            let (v, r) = after.split_once(';').unwrap_or((after, ""));
            (v.trim().to_string(), r)
        };
        if k.trim().eq_ignore_ascii_case(key) {
            return Some(value);
        }
        rest = next;
    }
    None
}

fn parts(body: &[u8], boundary: &str) -> Result<Vec<Part>, String> {
    let delim = format!("--{boundary}");
    let mut at = find(body, delim.as_bytes(), 0).ok_or("cannot read request metadata: multipart: NextPart: EOF")?;
    let mut out = Vec::new();
    loop {
        at += delim.len();
        if body.get(at..at + 2) == Some(b"--") {
            return Ok(out);
        }
        let head_start = at + 2; // CRLF after the delimiter
        let head_end = find(body, b"\r\n\r\n", head_start).ok_or("multipart: malformed part headers")?;
        let head = String::from_utf8_lossy(&body[head_start..head_end]).into_owned();
        let next = find(body, format!("\r\n{delim}").as_bytes(), head_end + 4).ok_or("multipart: NextPart: EOF")?;
        let disposition = head
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-disposition")))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        out.push(Part {
            name: disposition_param(&disposition, "name").unwrap_or_default(),
            filename: disposition_param(&disposition, "filename"),
            body: body[head_end + 4..next].to_vec(),
        });
        at = next + 2;
    }
}

/// `writeFiles`.
pub fn write_files(body: &[u8], boundary: &str) -> Answer {
    let parts = parts(body, boundary)?;
    let mut iter = parts.into_iter();
    let meta = iter.next().ok_or("cannot read request metadata: EOF")?;
    if meta.name != "request" {
        return Err(format!(r#"metadata field name must be "request", got {}"#, quote(&meta.name)));
    }
    let payload: Value =
        serde_json::from_slice(&meta.body).map_err(|e| format!("cannot decode request metadata: {e}"))?;
    let action = payload.get("action").and_then(Value::as_str).unwrap_or_default();
    if action != "write" {
        return Err(format!(r#"multipart action must be "write", got {}"#, quote(action)));
    }
    let files: Vec<Value> = payload.get("files").and_then(Value::as_array).cloned().unwrap_or_default();
    if files.is_empty() {
        return Err("must specify one or more files".into());
    }
    let mut errors: Vec<(String, Option<(String, &'static str)>)> = Vec::new();
    for part in iter {
        if part.name != "files" {
            return Err(format!(r#"field name must be "files", got {}"#, quote(&part.name)));
        }
        let path = part.filename.unwrap_or_default();
        let Some(item) = files.iter().find(|f| f.get("path").and_then(Value::as_str) == Some(path.as_str())) else {
            return Err(format!("no metadata for path {}", quote(&path)));
        };
        errors.push((path.clone(), write_file(item, &path, &part.body).err()));
    }
    let results: Vec<Value> = files
        .iter()
        .map(|f| {
            let path = f.get("path").and_then(Value::as_str).unwrap_or_default().to_string();
            let error = match errors.iter().find(|(p, _)| *p == path) {
                Some((_, e)) => e.clone(),
                None => Some((format!("no file content for path {}", quote(&path)), "generic-file-error")),
            };
            match error {
                None => json!({"path": path}),
                Some((message, kind)) => json!({"path": path, "error": {"message": message, "kind": kind}}),
            }
        })
        .collect();
    Ok(Value::Array(results))
}

/// `fileErrorToResult`'s kind of an I/O error.
fn kind_of(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => "permission-denied",
        std::io::ErrorKind::NotFound => "not-found",
        _ => "generic-file-error",
    }
}

/// An I/O error as Go prints it: `open /path: no such file or directory`.
fn go_error(op: &str, path: &Path, e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or_default().to_lowercase();
    format!("{op} {}: {text}", path.display())
}

/// `writeFile`: one file, with its metadata `item`.
fn write_file(item: &Value, path: &str, content: &[u8]) -> Result<(), (String, &'static str)> {
    if !path.starts_with('/') {
        return Err((format!("paths must be absolute, got {}", quote(path)), "generic-file-error"));
    }
    for key in ["user-id", "user", "group-id", "group"] {
        if item.get(key).is_some_and(|v| !v.is_null() && v != "") {
            return Err(("juju-local's Pebble does not change a file's owner".into(), "generic-file-error"));
        }
    }
    let target = Path::new(path);
    let parent = target.parent().unwrap_or(Path::new("/"));
    if item.get("make-dirs").and_then(Value::as_bool) == Some(true) {
        let mut missing = Vec::new();
        let mut dir = parent;
        while !dir.exists() {
            missing.push(dir.to_path_buf());
            dir = dir.parent().unwrap_or(Path::new("/"));
        }
        for dir in missing.into_iter().rev() {
            let made = std::fs::DirBuilder::new().mode(0o755).create(&dir);
            if let Err(e) = made.and_then(|_| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)))
                && e.kind() != std::io::ErrorKind::AlreadyExists
            {
                return Err((format!("cannot create directory: {}", go_error("mkdir", &dir, &e)), kind_of(&e)));
            }
        }
    }
    let permissions = item.get("permissions").and_then(Value::as_str).unwrap_or_default();
    let mode = if permissions.is_empty() {
        0o644
    } else {
        match u32::from_str_radix(permissions, 8) {
            Ok(m) if permissions.len() == 3 => m,
            _ => {
                return Err((
                    format!("permissions must be a 3-digit octal string, got {}", quote(permissions)),
                    "generic-file-error",
                ));
            }
        }
    };
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = parent.join(format!(".{name}.{:x}~", crate::util::random_u63()));
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&temp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(content)?;
        f.sync_all()?;
        std::fs::rename(&temp, target)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err((go_error("open", target, &e), kind_of(&e)));
    }
    Ok(())
}
