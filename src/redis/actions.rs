//! The charm's actions, as handlers on the same engine as the hooks: `get-password`, `check-service`, and
//! `rotate-password` (whose work is the ordinary configure path, see [`super::handlers`]).
//!
//! Juju runs actions in the Redis workload pod by default (reference §1.6), with the hook tools reaching the
//! operator over the network, and without the operator's state directory: an action sees the unit's state only as
//! Juju's charm state holds it, and commits none of it (see [`crate::charm::run_action`]). What units share comes
//! from the peer relation's application bag, read fresh in every action.
//!
//! A refused request (a bad option, Redis not answering) is `action-fail` with a message and exit 0, as Juju
//! expects; a hook tool failing is an error and a non-zero exit. `get-password` is the one place the charm reveals
//! the password on purpose: `action-set` takes results only as arguments, so for the life of that one tool
//! process it is on its command line.

use std::time::Duration;

use anyhow::Result;

use super::admin::{Node, NodeKind, Replication, Role, cmd, pairs, text};
use super::config::{RedisConfig, SENTINEL_PORT};
use super::peers;
use crate::juju::Settings;
use crate::layers::{Ctx, State};
use crate::meta::action;
use crate::reactive::{Registry, action_flag};

/// How long `check-service` waits for Redis and Sentinel.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Registers the read-only actions' handlers.
pub fn register(reg: &mut Registry<State>) {
    reg.handler("redis:get-password").when(&action_flag(action::GET_PASSWORD)).run(get_password);
    reg.handler("redis:check-service").when(&action_flag(action::CHECK_SERVICE)).run(check_service);
}

fn get_password(ctx: &mut Ctx<'_>) -> Result<()> {
    // Only the auth options matter here: another option being invalid must not hide the password.
    let auth_only: serde_json::Map<String, serde_json::Value> = ctx
        .config
        .iter()
        .filter(|(k, _)| *k == "password" || *k == "require-auth")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let cfg = match RedisConfig::from_juju(&auth_only) {
        Ok(cfg) => cfg,
        Err(errors) => {
            ctx.tools.action_fail(&errors.to_string())?;
            return Ok(());
        }
    };
    let shared = peers::shared(ctx)?;
    let Some(pw) = shared.password.clone() else {
        ctx.tools.action_fail("no password yet: the leader has not shared one (is the redis-peers relation up?)")?;
        return Ok(());
    };
    let mut results = Settings::new();
    results.insert("password".into(), pw);
    results.insert("require-auth".into(), cfg.require_auth.to_string());
    results.insert("rotation-in-progress".into(), shared.previous.is_some().to_string());
    ctx.tools.action_set(&results)?;
    Ok(())
}

fn check_service(ctx: &mut Ctx<'_>) -> Result<()> {
    let cfg = match RedisConfig::from_juju(&ctx.config) {
        Ok(cfg) => cfg,
        Err(errors) => {
            ctx.tools.action_fail(&errors.to_string())?;
            return Ok(());
        }
    };
    let shared = peers::shared(ctx)?;
    let pw = if cfg.require_auth { shared.password.clone() } else { None };
    let app = ctx.env.app_name().to_string();
    // The action runs in the pod: its Redis and Sentinel are on loopback.
    let addr = format!("127.0.0.1:{}", cfg.port);
    let redis = Node::new("this pod", NodeKind::Redis, &addr);
    let sentinel = Node::new("this pod", NodeKind::Sentinel, &format!("127.0.0.1:{SENTINEL_PORT}"));
    let creds: Vec<Option<&str>> = vec![pw.as_deref()];
    let admin = &mut ctx.charm.redis.admin;
    let answer = admin.run(
        &redis,
        &creds,
        &[cmd(&["PING"]), cmd(&["INFO", "server"]), cmd(&["INFO", "replication"])],
        CHECK_TIMEOUT,
    );
    let replies = match answer {
        Ok(s) => s.replies,
        Err(e) => {
            // A server's error text may quote what it was sent (Redis quotes the arguments of a command it does not
            // know, e.g. a renamed AUTH): never let the password through.
            let why = redact(&e.to_string(), pw.as_deref());
            ctx.tools.action_fail(&format!("Redis does not answer on {addr}: {why}"))?;
            return Ok(());
        }
    };
    let server = text(&replies[1]).unwrap_or_default();
    let replication = text(&replies[2]).and_then(|t| Replication::parse(&t));
    let mut results = Settings::new();
    results.insert("port".into(), cfg.port.to_string());
    results.insert("auth".into(), if cfg.require_auth { "required" } else { "off" }.into());
    results
        .insert("version".into(), super::resp::info_field(&server, "redis_version").unwrap_or("unknown").to_string());
    let mut problems = Vec::new();
    match &replication {
        Some(r) if r.is_primary() => {
            results.insert("role".into(), "primary".into());
            results.insert("connected-replicas".into(), r.replicas.len().to_string());
        }
        Some(Replication { role: Role::Replica { host, port, link_up }, .. }) => {
            results.insert("role".into(), "replica".into());
            results.insert("primary".into(), format!("{host}:{port}"));
            results.insert("link".into(), if *link_up { "up" } else { "down" }.into());
            if !link_up {
                problems.push(format!("the link to the primary {host}:{port} is down"));
            }
        }
        _ => {
            results.insert("role".into(), "unknown".into());
            problems.push("INFO replication made no sense".to_string());
        }
    }
    match ctx.charm.redis.admin.run(&sentinel, &creds, &[cmd(&["SENTINEL", "MASTER", &app])], CHECK_TIMEOUT) {
        Ok(s) => {
            let m = pairs(&s.replies[0]);
            let named = format!(
                "{}:{}",
                m.get("ip").map(String::as_str).unwrap_or("?"),
                m.get("port").map(String::as_str).unwrap_or("?")
            );
            results.insert("sentinel-primary".into(), named.clone());
            if m.get("flags").is_some_and(|f| f.contains("down")) {
                problems.push(format!("this pod's Sentinel sees the primary {named} down"));
            }
        }
        Err(e) => problems.push(redact(&e.to_string(), pw.as_deref())),
    }
    results.insert(
        "replication".into(),
        if problems.is_empty() { "ok".into() } else { format!("degraded: {}", problems.join("; ")) },
    );
    ctx.tools.action_set(&results)?;
    Ok(())
}

/// `text` with every occurrence of `secret` replaced.
fn redact(text: &str, secret: Option<&str>) -> String {
    match secret.filter(|s| !s.is_empty()) {
        Some(s) => text.replace(s, "<redacted>"),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_removes_every_occurrence() {
        let t = "ERR unknown command 'AUTH', with args beginning with: 'pw123456789012345' 'pw123456789012345'";
        assert_eq!(redact(t, Some("pw123456789012345")).matches("<redacted>").count(), 2);
        assert_eq!(redact(t, None), t);
        assert_eq!(redact(t, Some("")), t);
    }
}
