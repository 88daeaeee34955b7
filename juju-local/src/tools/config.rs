//! config-get (reference §3.5): the application's settings merged with config.yaml defaults.

use super::flags::{Flag, Parsed, bool_flag};
use super::{Ctx, FMT, OUT, Tool, ToolResult, run_err, unrecognized, usage_err};
use crate::charm_meta::ConfigSchema;
use serde_json::{Map, Value};

const FLAGS: &[Flag] = &[FMT, OUT, bool_flag("all", Some('a'))];

pub fn tools() -> Vec<Tool> {
    vec![Tool { name: "config-get", flags: FLAGS, usage: "[options] [<key>]", run: config_get }]
}

fn config_get(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    if p.args.len() > 1 {
        return Err(unrecognized(&p.args[1..]));
    }
    let key = p.args.first();
    if let Some(k) = key
        && p.has("all")
    {
        return Err(usage_err(format!("cannot use argument --all together with key {k:?}")));
    }
    let model = ctx.model()?;
    let app = model.app(&ctx.hook.app).map_err(|e| run_err(format!("{e:#}")))?;
    let schema = ConfigSchema::load(&ctx.paths.charm_dir(&ctx.hook.app, ctx.hook.unit))
        .map_err(|e| run_err(format!("{e:#}")))?;
    let settings = schema.effective(&app.config);
    let value = match key {
        Some(k) => settings.get(k).cloned().flatten().unwrap_or(Value::Null),
        None => {
            let mut m = Map::new();
            for (k, v) in settings {
                match v {
                    Some(v) => {
                        m.insert(k, v);
                    }
                    None if p.has("all") => {
                        m.insert(k, Value::Null);
                    }
                    None => {}
                }
            }
            Value::Object(m)
        }
    };
    ctx.print(p, &value)
}
