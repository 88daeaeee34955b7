//! Network and port tools (reference §3.9, §3.15): network-get answers with the unit's pod address
//! (there is no ClusterIP Service in juju-local); unit-get gives the same address; open-port and
//! close-port are recorded as deferred changes, which fail the hook at commit on CAAS.

use super::flags::{Flag, Parsed, bool_flag, val};
use super::{Ctx, FMT, OUT, REL, Tool, ToolResult, run_err, unrecognized, usage_err};
use crate::charm_meta::Metadata;
use serde_json::{Map, Value, json};

const NET_FLAGS: &[Flag] = &[
    FMT,
    OUT,
    REL,
    bool_flag("bind-address", None),
    bool_flag("ingress-address", None),
    bool_flag("egress-subnets", None),
    bool_flag("primary-address", None),
];
const PORT_FLAGS: &[Flag] = &[val("endpoints", None)];
const FMT_ONLY: &[Flag] = &[FMT, OUT];

pub fn tools() -> Vec<Tool> {
    vec![
        Tool { name: "network-get", flags: NET_FLAGS, usage: "<binding-name> [options]", run: network_get },
        Tool { name: "unit-get", flags: FMT_ONLY, usage: "<setting>", run: unit_get },
        Tool {
            name: "open-port",
            flags: PORT_FLAGS,
            usage: "<port>[/<protocol>] or <from>-<to>[/<protocol>] or icmp",
            run: open_port,
        },
        Tool {
            name: "close-port",
            flags: PORT_FLAGS,
            usage: "<port>[/<protocol>] or <from>-<to>[/<protocol>] or icmp",
            run: open_port,
        },
        Tool { name: "opened-ports", flags: FMT_ONLY, usage: "[options]", run: opened_ports },
    ]
}

fn network_get(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    let Some(binding) = p.args.first() else {
        return Err(usage_err("no arguments specified"));
    };
    if p.args.len() > 1 {
        return Err(unrecognized(&p.args[1..]));
    }
    let model = ctx.model()?;
    let _ = ctx.relation_id(p, &model)?;
    let meta =
        Metadata::load(&ctx.paths.charm_dir(&ctx.hook.app, ctx.hook.unit)).map_err(|e| run_err(format!("{e:#}")))?;
    if meta.endpoint(binding).is_none() && !meta.extra_bindings.contains(binding) {
        return Err(run_err(format!("no network config found for binding {binding:?}")));
    }
    let addr = model.unit(&ctx.hook.app, ctx.hook.unit).map_err(|e| run_err(format!("{e:#}")))?.address.clone();
    let selectors: Vec<&str> = ["bind-address", "ingress-address", "egress-subnets", "primary-address"]
        .into_iter()
        .filter(|f| p.has(f))
        .collect();
    if p.has("primary-address") && selectors.len() > 1 {
        return Err(usage_err("--primary-address must be the only flag specified"));
    }
    let value_of = |sel: &str| -> Value {
        match sel {
            "egress-subnets" => json!([format!("{addr}/32")]),
            _ => Value::String(addr.clone()),
        }
    };
    let v = match selectors.as_slice() {
        [] => json!({
            "bind-addresses": [{"mac-address": "", "interface-name": "eth0", "addresses": [{"hostname": "", "value": addr, "cidr": format!("{addr}/24")}]}],
            "egress-subnets": [format!("{addr}/32")],
            "ingress-addresses": [addr],
        }),
        [one] => value_of(one),
        many => Value::Object(many.iter().map(|s| (s.to_string(), value_of(s))).collect::<Map<_, _>>()),
    };
    ctx.print(p, &v)
}

fn unit_get(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    let Some(setting) = p.args.first() else {
        return Err(usage_err("no setting specified"));
    };
    if p.args.len() > 1 {
        return Err(unrecognized(&p.args[1..]));
    }
    if setting != "private-address" && setting != "public-address" {
        return Err(usage_err(format!("unknown setting {setting:?}")));
    }
    let model = ctx.model()?;
    let addr = model.unit(&ctx.hook.app, ctx.hook.unit).map_err(|e| run_err(format!("{e:#}")))?.address.clone();
    ctx.print(p, &Value::String(addr))
}

fn valid_port_spec(s: &str) -> bool {
    if s == "icmp" {
        return true;
    }
    let (ports, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    if !["tcp", "udp"].contains(&proto.to_ascii_lowercase().as_str()) {
        return false;
    }
    let (from, to) = ports.split_once('-').unwrap_or((ports, ports));
    matches!((from.parse::<u16>(), to.parse::<u16>()), (Ok(f), Ok(t)) if f >= 1 && f <= t)
}

fn open_port(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    let Some(spec) = p.args.first().cloned() else {
        return Err(usage_err("no port or range specified"));
    };
    if p.args.len() > 1 {
        return Err(unrecognized(&p.args[1..]));
    }
    if !valid_port_spec(&spec) {
        return Err(usage_err(format!("invalid port or range {spec:?}")));
    }
    ctx.with_context(|c| {
        c.pending.ports.push(spec);
        Ok(())
    })
}

fn opened_ports(ctx: &mut Ctx, p: &Parsed) -> ToolResult {
    if !p.args.is_empty() {
        return Err(unrecognized(&p.args));
    }
    if matches!(p.value("format"), None | Some("smart")) {
        return ctx.out.flush().map_err(|e| run_err(e.to_string()));
    }
    ctx.print(p, &json!([]))
}
