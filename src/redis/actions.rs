//! The charm's actions: `get-password`, `check-service`, `rotate-password`.
//!
//! Juju runs actions in the Redis workload pod by default (reference §1.6), with the same hook tools
//! reaching the operator over the network; that is why the binary is static. Actions do not run the
//! reactive loop, except `rotate-password`, which, after storing the new password, runs the charm's
//! handlers once so the leader's pod spec and every client relation carry it at once.
//!
//! A refused request (`rotate-password` on a non-leader, Redis not answering) is `action-fail` with a
//! message and exit 0, as Juju expects; a hook tool failing is an error and a non-zero exit.
//! `get-password` is the one place the charm reveals the password on purpose: `action-set` takes
//! results only as arguments, so for the life of that one tool process it is on its command line.

use std::time::Duration;

use anyhow::{Result, bail};

use super::auth::{self, BAG_KEY, PEERS};
use super::config::RedisConfig;
use super::resp;
use crate::juju::{HookEnv, HookTools, Settings};

/// How long `check-service` waits for Redis.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs `action` for the unit of `env`.
pub fn run_action(action: &str, env: &HookEnv, tools: &mut HookTools) -> Result<()> {
    match action {
        "get-password" => get_password(env, tools),
        "check-service" => check_service(env, tools),
        "rotate-password" => rotate_password(env, tools),
        other => bail!("unknown action {other:?}"),
    }
}

/// The validated config, or `None` after telling the operator what is wrong with it.
fn config(tools: &mut HookTools) -> Result<Option<RedisConfig>> {
    match RedisConfig::from_juju(&tools.config()?) {
        Ok(cfg) => Ok(Some(cfg)),
        Err(errors) => {
            tools.action_fail(&errors.to_string())?;
            Ok(None)
        }
    }
}

/// The password clients must send: the option's, else the one the leader keeps in the peer bag.
fn current_password(env: &HookEnv, tools: &mut HookTools, cfg: &RedisConfig) -> Result<Option<String>> {
    if let Some(pw) = cfg.password.clone().filter(|p| !p.is_empty()) {
        return Ok(Some(pw));
    }
    let Some(rid) = tools.relation_ids(PEERS)?.into_iter().next() else { return Ok(None) };
    let bag = tools.relation_get_app(&rid, env.app_name())?;
    Ok(bag.get(BAG_KEY).filter(|p| !p.is_empty()).cloned())
}

fn get_password(env: &HookEnv, tools: &mut HookTools) -> Result<()> {
    // Only the auth options matter here: another option being invalid must not hide the password.
    let values = tools.config()?;
    let auth_only: serde_json::Map<String, serde_json::Value> =
        values.into_iter().filter(|(k, _)| k == "password" || k == "require-auth").collect();
    let cfg = match RedisConfig::from_juju(&auth_only) {
        Ok(cfg) => cfg,
        Err(errors) => {
            tools.action_fail(&errors.to_string())?;
            return Ok(());
        }
    };
    let Some(pw) = current_password(env, tools, &cfg)? else {
        tools.action_fail("no password yet: the leader has not generated one (is the redis-peers relation up?)")?;
        return Ok(());
    };
    let mut results = Settings::new();
    results.insert("password".into(), pw);
    results.insert("require-auth".into(), cfg.require_auth.to_string());
    tools.action_set(&results)?;
    Ok(())
}

fn check_service(env: &HookEnv, tools: &mut HookTools) -> Result<()> {
    let Some(cfg) = config(tools)? else { return Ok(()) };
    let pw = if cfg.require_auth { current_password(env, tools, &cfg)? } else { None };
    let addr = format!("127.0.0.1:{}", cfg.port);
    let answer = resp::ping(&addr, pw.as_deref(), CHECK_TIMEOUT)
        .and_then(|()| resp::info(&addr, pw.as_deref(), "server", CHECK_TIMEOUT))
        .and_then(|server| Ok((server, resp::info(&addr, pw.as_deref(), "replication", CHECK_TIMEOUT)?)));
    let (server, replication) = match answer {
        Ok(a) => a,
        Err(e) => {
            // A server's error text may quote what it was sent (Redis quotes the arguments of a command
            // it does not know, e.g. a renamed AUTH): never let the password through.
            let why = redact(&format!("{e:#}"), pw.as_deref());
            tools.action_fail(&format!("Redis does not answer on {addr}: {why}"))?;
            return Ok(());
        }
    };
    let mut results = Settings::new();
    results.insert("port".into(), cfg.port.to_string());
    results.insert("auth".into(), if cfg.require_auth { "required" } else { "off" }.into());
    let field = |text: &str, k: &str| resp::info_field(text, k).unwrap_or("unknown").to_string();
    results.insert("version".into(), field(&server, "redis_version"));
    let role = field(&replication, "role");
    results.insert("role".into(), if role == "master" { "primary".into() } else { role });
    results.insert("connected-replicas".into(), field(&replication, "connected_slaves"));
    if let Some(host) = resp::info_field(&replication, "master_host") {
        results.insert("primary".into(), host.to_string());
    }
    tools.action_set(&results)?;
    Ok(())
}

/// `text` with every occurrence of `secret` replaced.
fn redact(text: &str, secret: Option<&str>) -> String {
    match secret.filter(|s| !s.is_empty()) {
        Some(s) => text.replace(s, "<redacted>"),
        None => text.to_string(),
    }
}

fn rotate_password(env: &HookEnv, tools: &mut HookTools) -> Result<()> {
    if !tools.is_leader()? {
        tools.action_fail(&format!(
            "rotate-password must run on the leader (juju status shows which unit of {} it is)",
            env.app_name()
        ))?;
        return Ok(());
    }
    let Some(cfg) = config(tools)? else { return Ok(()) };
    if cfg.password.as_deref().is_some_and(|p| !p.is_empty()) {
        tools.action_fail("the password option is set: change it with `juju config` instead")?;
        return Ok(());
    }
    let Some(rid) = tools.relation_ids(PEERS)?.into_iter().next() else {
        tools.action_fail("the redis-peers relation does not exist yet: try again in a moment")?;
        return Ok(());
    };
    let mut bag = Settings::new();
    bag.insert(BAG_KEY.to_string(), auth::generate()?);
    tools.relation_set(&rid, &bag, true)?;
    // Apply it now: the charm's handlers re-read the bag in this "hook" and re-send spec and relations.
    crate::charm::run_hook("rotate-password", env, tools)?;
    let mut results = Settings::new();
    results.insert("rotated".into(), "true".into());
    tools.action_set(&results)?;
    Ok(())
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
