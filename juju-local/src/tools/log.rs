//! juju-log (reference §3.7): writes to the unit's log immediately, under logger
//! `unit.<unit>.juju-log`, prefixed with `<endpoint>:<id>: ` in relation hooks.

use super::flags::{Flag, Parsed, bool_flag, val};
use super::{Ctx, Tool, ToolResult, usage_err};
use crate::model;

const FLAGS: &[Flag] = &[bool_flag("debug", None), val("log-level", Some('l')), val("format", None)];

pub fn tools() -> Vec<Tool> {
    vec![Tool { name: "juju-log", flags: FLAGS, usage: "[options] <message>", run: juju_log }]
}

fn juju_log(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    if p.args.is_empty() {
        return Err(usage_err("no message specified"));
    }
    if p.value("format").is_some() {
        let _ = write!(ctx.err, "--format flag deprecated for command \"juju-log\"");
    }
    let mut level = "INFO".to_string();
    if let Some(l) = p.value("log-level") {
        match l.to_ascii_uppercase().as_str() {
            "WARN" => level = "WARNING".into(),
            up @ ("TRACE" | "DEBUG" | "INFO" | "WARNING" | "ERROR" | "CRITICAL") => level = up.into(),
            "UNSPECIFIED" => {}
            _ => {
                let logger = format!("unit.{}.juju-log", ctx.hook.unit_name());
                model::log_line(
                    &ctx.paths,
                    &ctx.hook.app,
                    ctx.hook.unit,
                    "WARNING",
                    &logger,
                    &format!("Specified log level of {l:?} is not valid"),
                );
            }
        }
    }
    if p.has("debug") {
        level = "DEBUG".into();
    }
    let mut msg = p.args.join(" ");
    if let Some(rid) = ctx.hook.relation_id
        && let Ok(m) = ctx.model()
        && let Some(rel) = m.relations.get(&rid)
    {
        msg = format!("{}: {msg}", rel.key_for(&ctx.hook.app));
    }
    let logger = format!("unit.{}.juju-log", ctx.hook.unit_name());
    model::log_line(&ctx.paths, &ctx.hook.app, ctx.hook.unit, &level, &logger, &msg);
    Ok(())
}
