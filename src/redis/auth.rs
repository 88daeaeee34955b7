//! The Redis password: who makes it, where it is kept, how every unit learns it.
//!
//! An operator may set one (the `password` option); otherwise the leader generates a strong random one
//! once, from the OS RNG, and keeps it in the `redis-peers` relation's **application bag**. That bag is
//! shared by every unit, survives leader changes and scaling to zero and back, and is written with
//! `relation-set --app --file -`, so the password travels on stdin. (`leader-set`, the older place for
//! such data, only takes values as command-line arguments, where any process in the pod can read them.)
//!
//! Each unit remembers the shared password in its flag store (mode 0600, mirrored into Juju's charm
//! state) and re-reads the bag only in hooks where it can have changed unseen: peer relation hooks
//! (other units are told of every change to the bag) and update-status (the leader is not told of its
//! own bag's changes, so a `rotate-password` action reaches its pod spec within one interval).

use std::io::Read;

use anyhow::{Context as _, Result, bail};

use crate::juju::Settings;
use crate::layers::Ctx;
use crate::reactive::joined_units;

/// The peer endpoint whose application bag holds the generated password.
pub const PEERS: &str = "redis-peers";
/// The key of the password in that bag.
pub const BAG_KEY: &str = "password";
const CACHE_KEY: &str = "redis.auth.shared-password";
/// Length of a generated password: 32 characters of 62 symbols, about 190 bits.
pub const GENERATED_LEN: usize = 32;

/// A fresh password from `/dev/urandom`: letters and digits only, so it is safe in redis.conf, in a
/// URL and in a shell, without quoting. Unbiased (bytes above the largest multiple of 62 are dropped).
pub fn generate() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = std::fs::File::open("/dev/urandom").context("opening the OS random number generator")?;
    let mut out = String::with_capacity(GENERATED_LEN);
    let mut buf = [0u8; 64];
    while out.len() < GENERATED_LEN {
        rng.read_exact(&mut buf).context("reading the OS random number generator")?;
        for b in buf {
            if b < 248 && out.len() < GENERATED_LEN {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    Ok(out)
}

/// The peer relation's id, once Juju has created it.
pub fn peer_relation(ctx: &Ctx<'_>) -> Option<String> {
    joined_units(ctx, PEERS).into_keys().next()
}

fn refresh_hook(hook: &str) -> bool {
    hook.starts_with("redis-peers-relation-") || matches!(hook, "update-status" | "rotate-password")
}

/// The password shared through the peer bag: the cached copy, re-read where it may have changed. The
/// leader generates and stores one when there is none yet. `None` only while a non-leader waits for
/// the leader, or before Juju has created the peer relation.
pub fn shared_password(ctx: &mut Ctx<'_>) -> Result<Option<String>> {
    let cached: Option<String> = ctx.kv.get_as(CACHE_KEY);
    let rid = peer_relation(ctx);
    let mut current = cached.clone();
    if let Some(rid) = &rid
        && (cached.is_none() || refresh_hook(ctx.hook))
    {
        let app = ctx.env.app_name().to_string();
        let bag = ctx.tools.relation_get_app(rid, &app)?;
        super::topology::note_shared(ctx, &bag);
        current = bag.get(BAG_KEY).filter(|p| !p.is_empty()).cloned();
    }
    if current.is_none() && ctx.is_leader {
        // Keep a password generated before the peer relation existed, rather than make another.
        let pw = match cached {
            Some(pw) => pw,
            None => generate()?,
        };
        if let Some(rid) = &rid {
            store_shared(ctx, rid, &pw)?;
        }
        current = Some(pw);
    }
    match &current {
        Some(pw) => ctx.kv.set_as(CACHE_KEY, pw),
        None => ctx.kv.unset(CACHE_KEY),
    }
    Ok(current)
}

/// Writes `password` into the peer application bag (leader only; on stdin).
pub fn store_shared(ctx: &mut Ctx<'_>, relation_id: &str, password: &str) -> Result<()> {
    if !ctx.is_leader {
        bail!("only the leader can store the shared password");
    }
    let mut bag = Settings::new();
    bag.insert(BAG_KEY.to_string(), password.to_string());
    ctx.tools.relation_set(relation_id, &bag, true)?;
    ctx.kv.set_as(CACHE_KEY, &password.to_string());
    Ok(())
}

/// The password Redis requires: the operator's (`configured`, when non-empty), else the shared one.
pub fn effective_password(ctx: &mut Ctx<'_>, configured: &str) -> Result<Option<String>> {
    if !configured.is_empty() {
        return Ok(Some(configured.to_string()));
    }
    shared_password(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_alphanumeric_and_differ() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.len(), GENERATED_LEN);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        // Every symbol class shows up across a few passwords (a crude check that the mapping is not stuck).
        let many: String = (0..20).map(|_| generate().unwrap()).collect();
        assert!(many.bytes().any(|c| c.is_ascii_uppercase()));
        assert!(many.bytes().any(|c| c.is_ascii_lowercase()));
        assert!(many.bytes().any(|c| c.is_ascii_digit()));
    }
}
