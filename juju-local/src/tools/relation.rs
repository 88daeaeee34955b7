//! Relation tools (reference §3.10–§3.13): relation-ids, relation-list, relation-get (own data
//! includes this hook's pending writes) and relation-set (deferred; `--app` leader only).

use super::flags::{Flag, Parsed, bool_flag, val};
use super::{Ctx, FMT, OUT, REL, Tool, ToolResult, run_err, settings_arg, unrecognized, usage_err};
use crate::model::Relation;
use serde_json::Value;
use std::collections::BTreeMap;

const IDS_FLAGS: &[Flag] = &[FMT, OUT];
const LIST_FLAGS: &[Flag] = &[FMT, OUT, REL, bool_flag("app", None)];
const GET_FLAGS: &[Flag] = &[FMT, OUT, REL, bool_flag("app", None)];
const SET_FLAGS: &[Flag] = &[REL, bool_flag("app", None), val("file", None), FMT];

pub fn tools() -> Vec<Tool> {
    vec![
        Tool { name: "relation-ids", flags: IDS_FLAGS, usage: "[options] <name>", run: relation_ids },
        Tool { name: "relation-list", flags: LIST_FLAGS, usage: "[options]", run: relation_list },
        Tool { name: "relation-get", flags: GET_FLAGS, usage: "[options] <key> <unit id>", run: relation_get },
        Tool {
            name: "relation-set",
            flags: SET_FLAGS,
            usage: "[options] key=value [key=value ...]",
            run: relation_set,
        },
    ]
}

fn relation_ids(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    if p.args.len() > 1 {
        return Err(unrecognized(&p.args[1..]));
    }
    let model = ctx.model()?;
    let name = match p.args.first() {
        Some(n) => n.clone(),
        None => match ctx.hook.relation_id.and_then(|id| model.relations.get(&id)) {
            Some(r) => r.endpoint_of(&ctx.hook.app).to_string(),
            None => return Err(usage_err("no relation name specified")),
        },
    };
    let ids: Vec<Value> = model
        .relations
        .values()
        .filter(|r| r.involves(&ctx.hook.app) && r.endpoint_of(&ctx.hook.app) == name)
        .map(|r| Value::String(r.key_for(&ctx.hook.app)))
        .collect();
    ctx.print(p, &Value::Array(ids))
}

fn require_relation<'m>(
    ctx: &Ctx,
    p: &Parsed,
    model: &'m crate::model::Model,
) -> Result<&'m Relation, super::ToolError> {
    let id = ctx.relation_id(p, model)?.ok_or_else(|| usage_err("no relation id specified"))?;
    model.relations.get(&id).ok_or_else(|| usage_err("relation not found"))
}

fn relation_list(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    if !p.args.is_empty() {
        return Err(unrecognized(&p.args));
    }
    let model = ctx.model()?;
    let rel = require_relation(ctx, p, &model)?;
    if p.has("app") {
        return ctx.print(p, &Value::String(rel.other_app(&ctx.hook.app).to_string()));
    }
    let units: Vec<Value> =
        rel.joined.get(&ctx.hook.unit_name()).cloned().unwrap_or_default().into_iter().map(Value::String).collect();
    ctx.print(p, &Value::Array(units))
}

fn own_bag(ctx: &Ctx, rel: &Relation, app_bag: bool) -> BTreeMap<String, String> {
    let mut bag = if app_bag {
        rel.app_data.get(&ctx.hook.app).cloned().unwrap_or_default()
    } else {
        rel.unit_data.get(&ctx.hook.unit_name()).cloned().unwrap_or_default()
    };
    if let Some(ch) = ctx.hook.pending.relations.get(&rel.id) {
        for (k, v) in if app_bag { &ch.app } else { &ch.unit } {
            if v.is_empty() {
                bag.remove(k);
            } else {
                bag.insert(k.clone(), v.clone());
            }
        }
    }
    bag
}

fn relation_get(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    if p.args.len() > 2 {
        return Err(unrecognized(&p.args[2..]));
    }
    let model = ctx.model()?;
    let rel = require_relation(ctx, p, &model)?;
    let app_flag = p.has("app");
    let target = match p.args.get(1) {
        Some(t) => t.clone(),
        None if app_flag => ctx
            .hook
            .remote_app
            .clone()
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| rel.other_app(&ctx.hook.app).to_string()),
        None => match ctx.hook.remote_unit.clone().filter(|u| !u.is_empty()) {
            Some(u) => u,
            None => return Err(usage_err("no unit or application specified")),
        },
    };
    let key = p.args.first().filter(|k| k.as_str() != "-");
    let bag = if app_flag {
        let app = target.split('/').next().unwrap_or(&target).to_string();
        if app == ctx.hook.app {
            own_bag(ctx, rel, true)
        } else if app == rel.other_app(&ctx.hook.app) {
            rel.app_data.get(&app).cloned().unwrap_or_default()
        } else {
            return Err(run_err(format!(
                "cannot read application settings: application {app:?} is not in relation {:?}",
                rel.key_for(&ctx.hook.app)
            )));
        }
    } else if target == ctx.hook.unit_name() {
        own_bag(ctx, rel, false)
    } else {
        match rel.unit_data.get(&target) {
            Some(b) => b.clone(),
            None => {
                return Err(run_err(format!(
                    "cannot read settings for unit {target:?} in relation {:?}: unit {target:?}: settings not found",
                    rel.key_for(&ctx.hook.app)
                )));
            }
        }
    };
    let v = match key {
        Some(k) => bag.get(k).map(|s| Value::String(s.clone())).unwrap_or(Value::Null),
        None => serde_json::to_value(&bag).unwrap_or(Value::Null),
    };
    ctx.print(p, &v)
}

fn relation_set(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    let model = ctx.model()?;
    let pairs = settings_arg(ctx, p)?;
    let id = require_relation(ctx, p, &model)?.id;
    let app_flag = p.has("app");
    if app_flag && !ctx.is_leader(&model) {
        return Err(run_err("cannot write relation settings"));
    }
    ctx.with_context(|c| {
        let ch = c.pending.relations.entry(id).or_default();
        let bag = if app_flag { &mut ch.app } else { &mut ch.unit };
        bag.extend(pairs);
        Ok(())
    })
}
