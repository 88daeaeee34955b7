//! Action tools (reference §3.16): action-get, action-set, action-fail, action-log. Outside an
//! action they fail with `not running an action`.

use super::flags::{Flag, Parsed};
use super::{Ctx, FMT, OUT, Tool, ToolResult, run_err, usage_err};
use crate::model;
use serde_json::Value;

const FMT_ONLY: &[Flag] = &[FMT, OUT];
const NONE: &[Flag] = &[];
const RESERVED: [&str; 4] = ["stdout", "stdout-encoding", "stderr", "stderr-encoding"];

pub fn tools() -> Vec<Tool> {
    vec![
        Tool { name: "action-get", flags: FMT_ONLY, usage: "[options] [<key>[.<key>.<key>...]]", run: action_get },
        Tool { name: "action-set", flags: NONE, usage: "<key>=<value> [<key>=<value> ...]", run: action_set },
        Tool { name: "action-fail", flags: NONE, usage: "[\"<failure message>\"]", run: action_fail },
        Tool { name: "action-log", flags: NONE, usage: "<message>", run: action_log },
    ]
}

fn not_in_action() -> super::ToolError {
    run_err("not running an action")
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !k.starts_with('-')
        && !k.ends_with('-')
}

fn action_get(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    let Some(a) = &ctx.hook.action else { return Err(not_in_action()) };
    let mut v = a.params.clone();
    if let Some(key) = p.args.first() {
        for part in key.split('.') {
            v = v.get(part).cloned().unwrap_or(Value::Null);
        }
    } else if v.is_null() {
        v = Value::Object(Default::default());
    }
    ctx.print(p, &v)
}

fn action_set(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    if ctx.hook.action.is_none() {
        return Err(not_in_action());
    }
    let mut pairs = Vec::new();
    for a in &p.args {
        let Some((k, v)) = a.split_once('=') else {
            return Err(usage_err(format!("argument {a:?} must be of the form key...=value")));
        };
        if !k.split('.').all(valid_key) {
            return Err(usage_err(format!(
                "key {k:?} must start and end with lowercase alphanumeric, and contain only lowercase alphanumeric, hyphens and periods"
            )));
        }
        if RESERVED.contains(&k) {
            return Err(usage_err(format!("cannot set reserved action key {k:?}")));
        }
        pairs.push((k.to_string(), v.to_string()));
    }
    ctx.with_context(|c| {
        if let Some(a) = c.action.as_mut() {
            a.results.extend(pairs);
        }
        Ok(())
    })
}

fn action_fail(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    if ctx.hook.action.is_none() {
        return Err(not_in_action());
    }
    let msg =
        p.args.first().cloned().unwrap_or_else(|| "action failed without reason given, check action for errors".into());
    ctx.with_context(|c| {
        if let Some(a) = c.action.as_mut() {
            a.failed = Some(msg);
        }
        Ok(())
    })
}

fn action_log(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    if ctx.hook.action.is_none() {
        return Err(not_in_action());
    }
    if p.args.is_empty() {
        return Err(usage_err("no message specified"));
    }
    let logger = format!("unit.{}.action-log", ctx.hook.unit_name());
    model::log_line(&ctx.paths, &ctx.hook.app, ctx.hook.unit, "INFO", &logger, &p.args.join(" "));
    Ok(())
}
