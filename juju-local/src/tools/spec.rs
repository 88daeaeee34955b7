//! pod-spec-set / k8s-spec-set and their getters (reference §3.4): leader only; the spec (from
//! `--file`, stdin by default, plus `--k8s-resources`) is validated strictly now and stored in the
//! hook context; the runner commits it only if the hook exits 0.

use super::flags::{Flag, Parsed, val};
use super::{Ctx, Tool, ToolResult, run_err, unrecognized};
use crate::{model, podspec};

const SET_FLAGS: &[Flag] = &[val("file", None), val("k8s-resources", None)];
const NONE: &[Flag] = &[];

pub fn tools() -> Vec<Tool> {
    let set_usage = "[options] --file <core spec file> [--k8s-resources <k8s spec file>]";
    vec![
        Tool { name: "pod-spec-set", flags: SET_FLAGS, usage: set_usage, run: spec_set },
        Tool { name: "k8s-spec-set", flags: SET_FLAGS, usage: set_usage, run: spec_set },
        Tool { name: "pod-spec-get", flags: NONE, usage: "", run: spec_get },
        Tool { name: "k8s-spec-get", flags: NONE, usage: "", run: spec_get },
    ]
}

fn spec_set(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    if !p.args.is_empty() {
        return Err(unrecognized(&p.args));
    }
    let model = ctx.model()?;
    if !ctx.is_leader(&model) {
        let logger = "juju.worker.uniter.context";
        let msg = format!("{:?} is not the leader but is setting application k8s spec", ctx.hook.unit_name());
        model::log_line(&ctx.paths, &ctx.hook.app, ctx.hook.unit, "ERROR", logger, &msg);
        return Err(run_err("this unit is not the leader"));
    }
    let mut text = ctx.read_file_arg(p.value("file").unwrap_or("-"))?;
    if let Some(extra) = p.value("k8s-resources") {
        let more = ctx.read_file_arg(extra)?;
        if !text.ends_with('\n') && !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&more);
    }
    if text.trim().is_empty() {
        return Err(run_err("no k8s spec specified: pipe k8s spec to command, or specify a file with --file"));
    }
    // Decoded as this Juju version's strict decoder does (kubernetesResources.pod keys by version).
    podspec::parse_for(&text, Some(model.version())).map_err(run_err)?;
    ctx.with_context(|c| {
        c.pending.pod_spec = Some(text);
        Ok(())
    })
}

fn spec_get(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    if !p.args.is_empty() {
        return Err(unrecognized(&p.args));
    }
    let model = ctx.model()?;
    if !ctx.is_leader(&model) {
        return Err(run_err("this unit is not the leader"));
    }
    let spec = model.app(&ctx.hook.app).map_err(|e| run_err(format!("{e:#}")))?.pod_spec.clone().unwrap_or_default();
    ctx.out.write_all(spec.as_bytes()).map_err(|e| run_err(e.to_string()))
}
