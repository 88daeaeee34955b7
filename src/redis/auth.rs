//! The Redis password: where it comes from, and how it changes without a client being refused or a server left
//! holding a password nobody knows.
//!
//! The password in force lives in the peer relation's application bag ([`super::peers`]), the one source of truth
//! for every unit and every action. The leader decides it ([`decide`]): the `password` option when set, else the
//! one already shared, else a new one from the OS RNG ([`generate`]); the `rotate-password` action asks for a new
//! generated one.
//!
//! **Nothing reaches a running server before Juju has committed it.** A hook's relation data is committed only when
//! it exits 0, but what the leader sends a server takes effect at once. If a hook made the servers require a
//! password it had just generated and then failed, that password would be lost, and the servers would refuse every
//! password the charm knows. So a change of password takes three hooks of the leader (the second and third are the
//! `redis-peers-relation-changed` that Juju runs on every unit, the leader included, after each change of the
//! application bag; update-status catches up if one is missed):
//! 1. the leader records the new password as `pending-password` (nothing else changes);
//! 2. once that is committed, it makes every Redis and Sentinel accept the pending password as well as the current
//!    one (`ACL SETUSER default >new`) and switches replication and Sentinel to it; then it shares it ([`promote`]):
//!    `password` = new, `previous-password` = old, `password-generation` + 1. Every unit hands the new password to
//!    its clients and acknowledges the generation in its unit bag;
//! 3. in the leader's first update-status after every unit has acknowledged it (so clients get at least until
//!    then to move), the leader removes the old password everywhere ([`finish_rotation`]). From then on the old
//!    password is refused.
//!
//! A new deployment has no servers holding anything yet: its first password is shared at once (generation 1) and
//! goes into the first pod spec. A rotation asked for while another is under way drops the oldest password at
//! once: at most two are ever accepted by clients.

use std::io::Read;

use anyhow::{Context as _, Result};

use super::config::RedisConfig;
use super::peers::{self, Shared};
use crate::layers::Ctx;

/// Length of a generated password: 32 characters of 62 symbols, about 190 bits.
pub const GENERATED_LEN: usize = 32;

/// The symbols of a generated password.
const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Random bytes from here up are dropped: 248 is the largest multiple of 62 a byte can hold, so each symbol
/// is the image of exactly four byte values and none is favoured.
const UNBIASED_BOUND: u8 = (256 - 256 % ALPHABET.len()) as u8;

/// Maps random bytes to password symbols, unbiased: a byte below [`UNBIASED_BOUND`] gives
/// `ALPHABET[b % 62]`, any other is dropped.
fn symbols(bytes: impl IntoIterator<Item = u8>) -> impl Iterator<Item = char> {
    bytes.into_iter().filter(|b| *b < UNBIASED_BOUND).map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
}

/// A fresh password from `/dev/urandom`: letters and digits only, so it is safe in redis.conf, in a
/// URL and in a shell, without quoting. Unbiased (see `symbols`).
pub fn generate() -> Result<String> {
    let mut rng = std::fs::File::open("/dev/urandom").context("opening the OS random number generator")?;
    let mut out = String::with_capacity(GENERATED_LEN);
    let mut buf = [0u8; 64];
    while out.len() < GENERATED_LEN {
        rng.read_exact(&mut buf).context("reading the OS random number generator")?;
        out.extend(symbols(buf).take(GENERATED_LEN - out.len()));
    }
    Ok(out)
}

/// The shared state with `wanted` on its way in: nothing to do if it is already the password (or the pending
/// one); the first password of a deployment at once; otherwise a pending change (step 1).
pub fn with_password(current: &Shared, wanted: &str) -> Shared {
    let mut next = current.clone();
    match (current.password.as_deref(), current.pending.as_deref()) {
        (Some(p), None) if p == wanted => {}
        (_, Some(p)) if p == wanted => {}
        (Some(p), Some(_)) if p == wanted => next.pending = None,
        (Some(_), _) => next.pending = Some(wanted.to_string()),
        (None, _) => {
            next.password = Some(wanted.to_string());
            next.previous = None;
            next.pending = None;
            next.generation += 1;
        }
    }
    next
}

/// Leader only: the password state to share after this hook, from what is shared now (`current`). `rotate` asks
/// for a newly generated password (the `rotate-password` action).
pub fn decide(cfg: &RedisConfig, current: &Shared, rotate: bool) -> Result<Shared> {
    let option = cfg.password.as_deref().filter(|p| !p.is_empty());
    let wanted = match (option, &current.password) {
        (Some(p), _) => p.to_string(),
        (None, Some(_)) if rotate => generate()?,
        (None, Some(p)) => current.pending.clone().unwrap_or_else(|| p.clone()),
        (None, None) => generate()?,
    };
    Ok(with_password(current, &wanted))
}

/// Step 2, once every running server accepts the pending password: it becomes the password, the current one is
/// kept as the previous one until every unit has moved.
pub fn promote(current: &Shared) -> Shared {
    let Some(pending) = current.pending.clone() else { return current.clone() };
    Shared {
        previous: current.password.clone(),
        password: Some(pending),
        pending: None,
        generation: current.generation + 1,
        ..current.clone()
    }
}

/// Leader only: whether every unit has acknowledged the current generation, so the previous password can go.
pub fn rotation_complete(ctx: &mut Ctx<'_>, shared: &Shared) -> Result<bool> {
    if shared.previous.is_none() || peers::acknowledged(ctx) < shared.generation {
        return Ok(false);
    }
    let acks = peers::acknowledgements(ctx)?;
    let waiting: Vec<&String> = acks.iter().filter(|(_, g)| **g < shared.generation).map(|(u, _)| u).collect();
    if !waiting.is_empty() {
        let names: Vec<&str> = waiting.iter().map(|u| u.as_str()).collect();
        ctx.trace.push(format!("password rotation waits for {}", names.join(", ")));
        return Ok(false);
    }
    Ok(true)
}

/// Step 3: the previous password is no longer shared (the caller removes it from the running servers and the
/// Secret).
pub fn finish_rotation(ctx: &mut Ctx<'_>, shared: &Shared) -> Result<Shared> {
    let next = Shared { previous: None, ..shared.clone() };
    peers::write(ctx, &next)?;
    ctx.trace.push(format!(
        "password rotation to generation {} complete: the previous password is retired",
        next.generation
    ));
    Ok(next)
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

    #[test]
    fn bytes_from_248_up_are_dropped_and_the_rest_use_every_symbol_equally() {
        assert_eq!(UNBIASED_BOUND, 248);
        assert_eq!(symbols([247]).collect::<String>(), "9", "247 is the last byte kept");
        assert_eq!(symbols(248..=255).count(), 0, "bytes 248-255 would favour A-H");
        assert_eq!(symbols([0, 61, 62, 123, 124, 185, 186, 247]).collect::<String>(), "A9A9A9A9");
        // 0..248 gives each of the 62 symbols exactly four times, in alphabet order each round.
        let all: String = symbols(0..=255).collect();
        assert_eq!(all.len(), 248);
        for symbol in ALPHABET {
            assert_eq!(all.bytes().filter(|c| c == symbol).count(), 4, "{}", char::from(*symbol));
        }
        assert_eq!(&all.as_bytes()[..62], ALPHABET);
        assert_eq!(&all.as_bytes()[186..], ALPHABET);
        // Dropped bytes are skipped, not the end of the input.
        assert_eq!(symbols([255, 1, 250, 2]).collect::<String>(), "BC");
    }

    fn state(s: &Shared) -> (Option<&str>, Option<&str>, Option<&str>, u64) {
        (s.password.as_deref(), s.previous.as_deref(), s.pending.as_deref(), s.generation)
    }

    #[test]
    fn a_new_password_is_pending_then_promoted_then_the_old_one_retires() {
        let first = with_password(&Shared::default(), "a");
        assert_eq!(state(&first), (Some("a"), None, None, 1), "a new deployment's password is shared at once");
        assert_eq!(with_password(&first, "a"), first, "the same password changes nothing");
        let pending = with_password(&first, "b");
        assert_eq!(state(&pending), (Some("a"), None, Some("b"), 1), "nothing is in force before the servers take it");
        assert_eq!(with_password(&pending, "b"), pending);
        let promoted = promote(&pending);
        assert_eq!(state(&promoted), (Some("b"), Some("a"), None, 2));
        // Changed again before the servers took it: the newer pending one wins; back to the current: no change.
        assert_eq!(state(&with_password(&pending, "c")), (Some("a"), None, Some("c"), 1));
        assert_eq!(state(&with_password(&pending, "a")), (Some("a"), None, None, 1));
        // During a window, a new rotation drops the oldest password when it is promoted.
        assert_eq!(state(&promote(&with_password(&promoted, "c"))), (Some("c"), Some("b"), None, 3));
    }

    #[test]
    fn decide_follows_the_option_keeps_what_is_shared_and_rotates_on_request() {
        let cfg = RedisConfig::default();
        let made = decide(&cfg, &Shared::default(), false).unwrap();
        assert_eq!(made.password.as_ref().map(String::len), Some(GENERATED_LEN));
        assert_eq!(decide(&cfg, &made, false).unwrap(), made);
        let rotating = decide(&cfg, &made, true).unwrap();
        assert!(rotating.pending.is_some() && rotating.password == made.password);
        assert_eq!(decide(&cfg, &rotating, false).unwrap(), rotating, "a pending change stays pending");
        let opt = RedisConfig { password: Some("operator-chosen-password-1".into()), ..cfg };
        assert_eq!(decide(&opt, &made, false).unwrap().pending.as_deref(), Some("operator-chosen-password-1"));
    }
}
