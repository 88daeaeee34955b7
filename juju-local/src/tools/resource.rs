//! resource-get (reference §3.1, §4): writes the oci-image resource as `content.yaml`
//! (registrypath/username/password) at the 2.9.31+ path `<unit dir>/resources/content.yaml` and prints
//! that path with no trailing newline.

use super::flags::{Flag, Parsed};
use super::{Ctx, Tool, ToolResult, run_err, unrecognized, usage_err};

const NONE: &[Flag] = &[];

pub fn tools() -> Vec<Tool> {
    vec![Tool { name: "resource-get", flags: NONE, usage: "<resource name>", run: resource_get }]
}

fn resource_get(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    let Some(name) = p.args.first() else {
        return Err(usage_err("missing required resource name"));
    };
    if p.args.len() > 1 {
        return Err(unrecognized(&p.args[1..]));
    }
    let model = ctx.model()?;
    let app = model.app(&ctx.hook.app).map_err(|e| run_err(format!("{e:#}")))?;
    let Some(res) = app.resources.get(name) else {
        return Err(run_err(format!("could not download resource: resource {name:?} not found")));
    };
    let text = serde_yaml::to_string(res).map_err(|e| run_err(format!("could not download resource: {e}")))?;
    let path = ctx.paths.unit_dir(&ctx.hook.app, ctx.hook.unit).join("resources").join("content.yaml");
    crate::util::atomic_write(&path, text.as_bytes())
        .map_err(|e| run_err(format!("could not download resource: {e:#}")))?;
    ctx.out.write_all(path.display().to_string().as_bytes()).map_err(|e| run_err(e.to_string()))
}
