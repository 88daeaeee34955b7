//! Leadership tools (reference §3.6, §3.14): is-leader, leader-get, and leader-set (leader only,
//! applied immediately, and it makes the runner fire leader-settings-changed on the other units).

use super::flags::{Flag, Parsed};
use super::{Ctx, FMT, OUT, Tool, ToolResult, parse_pairs, run_err, unrecognized, usage_err};
use serde_json::Value;
use std::collections::BTreeMap;

const FMT_ONLY: &[Flag] = &[FMT, OUT];
const NONE: &[Flag] = &[];

pub fn tools() -> Vec<Tool> {
    vec![
        Tool { name: "is-leader", flags: FMT_ONLY, usage: "[options]", run: is_leader },
        Tool { name: "leader-get", flags: FMT_ONLY, usage: "[options] [<key>]", run: leader_get },
        Tool { name: "leader-set", flags: NONE, usage: "<key>=<value> [...]", run: leader_set },
    ]
}

fn is_leader(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    if !p.args.is_empty() {
        return Err(unrecognized(&p.args));
    }
    let model = ctx.model().map_err(|e| match e {
        super::ToolError::Run(m) => run_err(format!("leadership status unknown: {m}")),
        other => other,
    })?;
    let leader = ctx.is_leader(&model);
    ctx.print(p, &Value::Bool(leader))
}

fn leader_get(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    if p.args.len() > 1 {
        return Err(unrecognized(&p.args[1..]));
    }
    let key = p.args.first().filter(|k| k.as_str() != "-");
    if let Some(k) = key
        && k.contains('=')
    {
        return Err(usage_err(format!("invalid key {k:?}")));
    }
    let model = ctx.model()?;
    let app = model.app(&ctx.hook.app).map_err(|e| run_err(format!("{e:#}")))?;
    let v = match key {
        Some(k) => app.leader_settings.get(k).map(|s| Value::String(s.clone())).unwrap_or(Value::Null),
        None => serde_json::to_value(&app.leader_settings).unwrap_or(Value::Null),
    };
    ctx.print(p, &v)
}

fn leader_set(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    let mut pairs = BTreeMap::new();
    parse_pairs(&p.args, &mut pairs)?;
    let (app, unit) = (ctx.hook.app.clone(), ctx.hook.unit);
    let changed = ctx.with_model(|model| {
        let a = model.app_mut(&app).map_err(|e| run_err(format!("{e:#}")))?;
        if a.leader != Some(unit) {
            return Err(run_err("cannot write leadership settings: cannot write settings: not the leader"));
        }
        let before = a.leader_settings.clone();
        for (k, v) in pairs {
            if v.is_empty() {
                a.leader_settings.remove(&k);
            } else {
                a.leader_settings.insert(k, v);
            }
        }
        Ok(before != a.leader_settings)
    })?;
    if changed {
        ctx.with_context(|c| {
            c.leader_settings_changed = true;
            Ok(())
        })?;
    }
    Ok(())
}
