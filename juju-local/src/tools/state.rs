//! Charm state tools (reference §1.7): state-get reads committed + pending values; state-set and
//! state-delete are deferred to the hook's commit.

use super::flags::{Flag, Parsed, bool_flag, val};
use super::{Ctx, FMT, OUT, Tool, ToolResult, run_err, settings_arg, unrecognized};
use serde_json::Value;
use std::collections::BTreeMap;

const GET_FLAGS: &[Flag] = &[FMT, OUT, bool_flag("strict", None)];
const SET_FLAGS: &[Flag] = &[val("file", None)];
const NONE: &[Flag] = &[];

pub fn tools() -> Vec<Tool> {
    vec![
        Tool { name: "state-get", flags: GET_FLAGS, usage: "[options] [<key>]", run: state_get },
        Tool { name: "state-set", flags: SET_FLAGS, usage: "[options] key=value [key=value ...]", run: state_set },
        Tool { name: "state-delete", flags: NONE, usage: "<key>", run: state_delete },
    ]
}

fn current(ctx: &Ctx) -> Result<BTreeMap<String, String>, super::ToolError> {
    let model = ctx.model()?;
    let mut state = model.unit(&ctx.hook.app, ctx.hook.unit).map_err(|e| run_err(format!("{e:#}")))?.state.clone();
    for (k, v) in &ctx.hook.pending.state {
        match v {
            Some(v) => state.insert(k.clone(), v.clone()),
            None => state.remove(k),
        };
    }
    Ok(state)
}

fn state_get(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    if p.args.len() > 1 {
        return Err(unrecognized(&p.args[1..]));
    }
    let state = current(ctx)?;
    let v = match p.args.first().filter(|k| k.as_str() != "-") {
        None => serde_json::to_value(&state).unwrap_or(Value::Null),
        Some(k) => match state.get(k) {
            Some(v) => Value::String(v.clone()),
            None if p.has("strict") => return Err(run_err(format!("{k:?} not found"))),
            None => Value::String(String::new()),
        },
    };
    ctx.print(p, &v)
}

fn state_set(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    let pairs = settings_arg(ctx, p)?;
    for (k, v) in &pairs {
        if k.len() > 256 {
            return Err(run_err("max allowed key length (256) exceeded"));
        }
        if v.len() > 65536 {
            return Err(run_err("max allowed value length (65536) exceeded"));
        }
    }
    ctx.with_context(|c| {
        for (k, v) in pairs {
            c.pending.state.insert(k, Some(v));
        }
        Ok(())
    })
}

fn state_delete(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    if p.args.len() > 1 {
        return Err(unrecognized(&p.args[1..]));
    }
    let Some(key) = p.args.first().cloned() else { return Ok(()) };
    ctx.with_context(|c| {
        c.pending.state.insert(key, None);
        Ok(())
    })
}
