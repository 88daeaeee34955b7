//! Status tools (reference §3.2, §3.3, §3.8): status-set (immediate; `--application` leader only),
//! status-get, application-version-set (immediate).

use super::flags::{Flag, Parsed, bool_flag};
use super::{Ctx, FMT, OUT, Tool, ToolResult, run_err, unrecognized, usage_err};
use crate::model::StatusInfo;
use serde_json::{Value, json};

const SET_FLAGS: &[Flag] = &[bool_flag("application", None)];
const GET_FLAGS: &[Flag] = &[FMT, OUT, bool_flag("application", None), bool_flag("include-data", None)];
const NONE: &[Flag] = &[];
const VALID: [&str; 4] = ["maintenance", "blocked", "waiting", "active"];

pub fn tools() -> Vec<Tool> {
    vec![
        Tool {
            name: "status-set",
            flags: SET_FLAGS,
            usage: "[options] <maintenance | blocked | waiting | active> [message]",
            run: status_set,
        },
        Tool {
            name: "status-get",
            flags: GET_FLAGS,
            usage: "[options] [--include-data] [--application]",
            run: status_get,
        },
        Tool { name: "application-version-set", flags: NONE, usage: "<new-version>", run: version_set },
    ]
}

fn status_set(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    let Some(status) = p.args.first() else {
        return Err(usage_err("invalid args, require <status> [message]"));
    };
    if !VALID.contains(&status.as_str()) {
        return Err(usage_err(format!("invalid status {status:?}, expected one of [{}]", VALID.join(" "))));
    }
    if p.args.len() > 2 {
        return Err(unrecognized(&p.args[2..]));
    }
    let info = StatusInfo::new(status, p.args.get(1).map(String::as_str).unwrap_or(""));
    let (app, unit, application) = (ctx.hook.app.clone(), ctx.hook.unit, p.has("application"));
    ctx.with_model(|model| {
        let a = model.app_mut(&app).map_err(|e| run_err(format!("{e:#}")))?;
        if application {
            if a.leader != Some(unit) {
                return Err(run_err("this unit is not the leader"));
            }
            a.app_status = Some(info);
        } else {
            let u = a.units.get_mut(&unit).ok_or_else(|| run_err("unit not found"))?;
            u.workload = Some(info);
            u.status_set_called = true;
        }
        Ok(())
    })
}

fn status_json(s: &StatusInfo, data: bool) -> Value {
    if data {
        json!({"status": s.status, "message": s.message, "status-data": {}})
    } else {
        json!({"status": s.status})
    }
}

fn status_get(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    if !p.args.is_empty() {
        return Err(unrecognized(&p.args));
    }
    let model = ctx.model()?;
    let app = model.app(&ctx.hook.app).map_err(|e| run_err(format!("{e:#}")))?;
    let smart = matches!(p.value("format"), None | Some("smart"));
    let data = p.has("include-data");
    let unknown = StatusInfo::new("unknown", "");
    if p.has("application") {
        if app.leader != Some(ctx.hook.unit) {
            return Err(run_err("finding application status: this unit is not the leader"));
        }
        let s = app.app_status.clone().unwrap_or_else(|| unknown.clone());
        if smart && !data {
            return ctx.print(p, &Value::String(s.status));
        }
        let mut v = status_json(&s, data);
        let units: serde_json::Map<String, Value> = app
            .units
            .iter()
            .map(|(n, u)| (format!("{}/{n}", app.name), status_json(u.workload.as_ref().unwrap_or(&unknown), data)))
            .collect();
        if let Some(o) = v.as_object_mut() {
            o.insert("units".into(), Value::Object(units));
        }
        return ctx.print(p, &json!({"application-status": v}));
    }
    let unit = app.units.get(&ctx.hook.unit).ok_or_else(|| run_err("unit not found"))?;
    let s = unit.workload.clone().unwrap_or(unknown);
    if smart && !data {
        return ctx.print(p, &Value::String(s.status));
    }
    ctx.print(p, &status_json(&s, data))
}

fn version_set(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    let Some(version) = p.args.first().cloned() else {
        return Err(usage_err("no version specified"));
    };
    if p.args.len() > 1 {
        return Err(unrecognized(&p.args[1..]));
    }
    let app = ctx.hook.app.clone();
    ctx.with_model(|model| {
        model.app_mut(&app).map_err(|e| run_err(format!("{e:#}")))?.version = version;
        Ok(())
    })
}
