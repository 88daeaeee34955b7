//! The charm's Juju config, validated into a typed [`RedisConfig`].
//!
//! The config-changed handler reads `config-get --all --format json` and passes the map it gets to
//! [`RedisConfig::from_juju`]. If that returns [`ConfigErrors`], the handler shows its `Display` text as the
//! `blocked` status message and does not call `pod-spec-set`. If it returns a config, the handler gives it to
//! [`crate::redis::pod::render_pod_spec`].
//!
//! The controller already type-checks `juju config` values (reference §0.13), so these checks catch what it
//! cannot: ranges, formats, and numbers that arrive as float64 through JSON-RPC (`8080` or `8080.0`, §0.8). Every
//! value that passes is safe to write into redis.conf as-is: no option can smuggle a newline, a quote or a second
//! directive into the file.
//!
//! **Adding an option.** Put its default in [`RedisConfig::default`] (the only place for defaults), add a field,
//! and add one row to `OPTIONS` that names the option and validates its value into that field. String and boolean
//! options treat JSON `null` (what `config-get --all` prints for an option without a value) as "use the default".

use std::fmt;

use serde_json::{Map, Value};

use crate::meta::OptionType;

/// The default of the `port` option, as in `config.yaml`.
pub const DEFAULT_PORT: u16 = 6379;

/// The port every pod's Sentinel listens on. Fixed, because Sentinel-aware clients assume it; so the `port`
/// option may not take it.
pub const SENTINEL_PORT: u16 = 26379;

/// The default of the `save` option: RDB snapshot points as `(seconds, changes)`, Redis 7's own default.
pub const DEFAULT_SAVE: [SavePoint; 3] = [
    SavePoint { seconds: 3600, changes: 1 },
    SavePoint { seconds: 300, changes: 100 },
    SavePoint { seconds: 60, changes: 10000 },
];

/// The shortest password the charm accepts.
pub const PASSWORD_MIN_LEN: usize = 16;
/// The longest password the charm accepts.
pub const PASSWORD_MAX_LEN: usize = 512;

/// The charm's config after validation. Every field holds a value that is safe to render.
///
/// `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// The TCP port redis-server listens on. The container port and the probes use it too. Never
    /// [`SENTINEL_PORT`].
    pub port: u16,
    /// Whether clients must authenticate (`requirepass`). Replicas and Sentinels always use the same password.
    pub require_auth: bool,
    /// The password the operator set, or `None` when the leader must generate one. Always passes
    /// [`validate_password`]. Only meaningful when `require_auth` is on.
    pub password: Option<String>,
    /// Whether the append-only file is on.
    pub appendonly: bool,
    /// How often the append-only file is fsynced.
    pub appendfsync: AppendFsync,
    /// RDB snapshot points; empty disables snapshots (`save ""`).
    pub save: Vec<SavePoint>,
    /// The memory limit in bytes; 0 means no limit.
    pub maxmemory: u64,
    /// What Redis does when `maxmemory` is reached.
    pub maxmemory_policy: MaxmemoryPolicy,
}

impl Default for RedisConfig {
    /// The `config.yaml` defaults, used for any option missing from config-get's output.
    fn default() -> Self {
        RedisConfig {
            port: DEFAULT_PORT,
            require_auth: true,
            password: None,
            appendonly: true,
            appendfsync: AppendFsync::Everysec,
            save: DEFAULT_SAVE.to_vec(),
            maxmemory: 0,
            maxmemory_policy: MaxmemoryPolicy::Noeviction,
        }
    }
}

/// Hides the password, so logging a config never leaks it.
impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("port", &self.port)
            .field("require_auth", &self.require_auth)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("appendonly", &self.appendonly)
            .field("appendfsync", &self.appendfsync)
            .field("save", &self.save)
            .field("maxmemory", &self.maxmemory)
            .field("maxmemory_policy", &self.maxmemory_policy)
            .finish()
    }
}

/// One RDB snapshot point: save after `seconds` if at least `changes` keys changed. Both are 1..=2^31-1, the
/// range Redis stores them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavePoint {
    pub seconds: u32,
    pub changes: u32,
}

/// The `appendfsync` policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendFsync {
    Always,
    Everysec,
    No,
}

impl AppendFsync {
    /// Every policy, in the order the error message lists them.
    pub const ALL: [AppendFsync; 3] = [AppendFsync::Always, AppendFsync::Everysec, AppendFsync::No];

    /// The name in redis.conf and config.yaml.
    pub fn as_str(self) -> &'static str {
        match self {
            AppendFsync::Always => "always",
            AppendFsync::Everysec => "everysec",
            AppendFsync::No => "no",
        }
    }
}

/// Redis 7's eviction policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxmemoryPolicy {
    Noeviction,
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
}

impl MaxmemoryPolicy {
    /// Every policy, in the order the error message lists them.
    pub const ALL: [MaxmemoryPolicy; 8] = [
        MaxmemoryPolicy::Noeviction,
        MaxmemoryPolicy::AllkeysLru,
        MaxmemoryPolicy::AllkeysLfu,
        MaxmemoryPolicy::AllkeysRandom,
        MaxmemoryPolicy::VolatileLru,
        MaxmemoryPolicy::VolatileLfu,
        MaxmemoryPolicy::VolatileRandom,
        MaxmemoryPolicy::VolatileTtl,
    ];

    /// The name in redis.conf and config.yaml.
    pub fn as_str(self) -> &'static str {
        match self {
            MaxmemoryPolicy::Noeviction => "noeviction",
            MaxmemoryPolicy::AllkeysLru => "allkeys-lru",
            MaxmemoryPolicy::AllkeysLfu => "allkeys-lfu",
            MaxmemoryPolicy::AllkeysRandom => "allkeys-random",
            MaxmemoryPolicy::VolatileLru => "volatile-lru",
            MaxmemoryPolicy::VolatileLfu => "volatile-lfu",
            MaxmemoryPolicy::VolatileRandom => "volatile-random",
            MaxmemoryPolicy::VolatileTtl => "volatile-ttl",
        }
    }
}

/// One config option: its name in `config.yaml`, and how a value given for it is checked and stored.
struct OptionSpec {
    name: &'static str,
    /// Its type in `config.yaml` (what Juju checks `juju config` values against).
    kind: OptionType,
    /// Validates `value` and stores it in the config. `Err` holds the problem, worded to follow the option's
    /// name: "must be 1-65535, got 70000".
    apply: fn(&mut RedisConfig, &Value) -> Result<(), String>,
}

/// Every option the charm reads. Options that are missing from config-get's output keep their defaults.
const OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        name: "port",
        kind: OptionType::Int,
        apply: |cfg, value| {
            let port = integer_in(value, 1, u16::MAX.into())?;
            let port = u16::try_from(port).map_err(|_| range_problem(1, u16::MAX.into(), value))?;
            if port == SENTINEL_PORT {
                return Err(format!("{SENTINEL_PORT} is reserved for Sentinel"));
            }
            cfg.port = port;
            Ok(())
        },
    },
    OptionSpec {
        name: "require-auth",
        kind: OptionType::Boolean,
        apply: |cfg, value| {
            if let Some(b) = boolean(value)? {
                cfg.require_auth = b;
            }
            Ok(())
        },
    },
    OptionSpec {
        name: "password",
        kind: OptionType::String,
        apply: |cfg, value| {
            // Never show the value: it is a secret, even when it is wrong.
            let text = match value {
                Value::Null => return Ok(()),
                Value::String(s) => s,
                _ => return Err("must be a string".to_owned()),
            };
            if text.is_empty() {
                cfg.password = None;
                return Ok(());
            }
            validate_password(text)?;
            cfg.password = Some(text.clone());
            Ok(())
        },
    },
    OptionSpec {
        name: "appendonly",
        kind: OptionType::Boolean,
        apply: |cfg, value| {
            if let Some(b) = boolean(value)? {
                cfg.appendonly = b;
            }
            Ok(())
        },
    },
    OptionSpec {
        name: "appendfsync",
        kind: OptionType::String,
        apply: |cfg, value| {
            if let Some(text) = string(value)? {
                cfg.appendfsync = one_of(&AppendFsync::ALL, AppendFsync::as_str, text, value)?;
            }
            Ok(())
        },
    },
    OptionSpec {
        name: "save",
        kind: OptionType::String,
        apply: |cfg, value| {
            if let Some(text) = string(value)? {
                cfg.save = parse_save(text).ok_or_else(|| {
                    format!(
                        "must be pairs of whole numbers `<seconds> <changes>`, each 1-{}, got {}",
                        i32::MAX,
                        shown(value)
                    )
                })?;
            }
            Ok(())
        },
    },
    OptionSpec {
        name: "maxmemory",
        kind: OptionType::String,
        apply: |cfg, value| {
            if let Some(text) = string(value)? {
                cfg.maxmemory = parse_size(text).map_err(|problem| format!("{problem}, got {}", shown(value)))?;
            }
            Ok(())
        },
    },
    OptionSpec {
        name: "maxmemory-policy",
        kind: OptionType::String,
        apply: |cfg, value| {
            if let Some(text) = string(value)? {
                cfg.maxmemory_policy = one_of(&MaxmemoryPolicy::ALL, MaxmemoryPolicy::as_str, text, value)?;
            }
            Ok(())
        },
    },
];

/// Every option [`RedisConfig::from_juju`] reads, with the type it expects config.yaml to declare for it.
pub fn options() -> impl Iterator<Item = (&'static str, OptionType)> {
    OPTIONS.iter().map(|o| (o.name, o.kind))
}

/// Checks a password against the charm's rules: 16-512 characters, printable ASCII, no whitespace and none of
/// `"` `'` `\`, so that it can be written into redis.conf and sentinel.conf without quoting.
///
/// The leader should check a password it generates or reads back from its store with this too. `Err` describes
/// the problem, worded to follow "password", and never contains the password or any part of it.
pub fn validate_password(password: &str) -> Result<(), String> {
    let len = password.chars().count();
    if !(PASSWORD_MIN_LEN..=PASSWORD_MAX_LEN).contains(&len) {
        return Err(format!("must be {PASSWORD_MIN_LEN}-{PASSWORD_MAX_LEN} characters long, got {len}"));
    }
    if password.bytes().any(|b| !b.is_ascii_graphic() || matches!(b, b'"' | b'\'' | b'\\')) {
        return Err("may only contain printable ASCII characters other than space, \", ' and \\".to_owned());
    }
    Ok(())
}

impl RedisConfig {
    /// Validates the output of `config-get --all --format json`.
    ///
    /// Missing options take their `config.yaml` defaults, and keys the charm does not know are ignored. If any
    /// option is invalid, the error names every invalid option, not just the first.
    pub fn from_juju(values: &Map<String, Value>) -> Result<RedisConfig, ConfigErrors> {
        let mut cfg = RedisConfig::default();
        let mut errors = Vec::new();
        for option in OPTIONS {
            if let Some(value) = values.get(option.name)
                && let Err(problem) = (option.apply)(&mut cfg, value)
            {
                errors.push(ConfigError { option: option.name, problem });
            }
        }
        if errors.is_empty() { Ok(cfg) } else { Err(ConfigErrors(errors)) }
    }
}

/// One option with an invalid value. Its `Display` is `<option> <problem>`, e.g. `port must be 1-65535, got 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    option: &'static str,
    problem: String,
}

impl ConfigError {
    /// The option's name in `config.yaml`.
    pub fn option(&self) -> &str {
        self.option
    }

    /// What is wrong with the value, worded to follow the option's name.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.option, self.problem)
    }
}

/// Every invalid option in one config, in `OPTIONS` order (never empty).
///
/// Its `Display` is the charm's blocked status message: `invalid config: port must be 1-65535, got 70000`, and
/// with several options `invalid config: a …; b …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    /// The invalid options, one entry each.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid config: ")?;
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Reads a whole number in `min..=max` from a JSON value.
///
/// Juju sends int options through JSON-RPC as float64, so `8080.0` is accepted as 8080. Floats are compared in
/// f64 before any conversion, so huge or negative values are reported, never wrapped or saturated.
fn integer_in(value: &Value, min: i64, max: i64) -> Result<i64, String> {
    let Value::Number(number) = value else {
        return Err(format!("must be an integer, got {value}"));
    };
    if let Some(i) = number.as_i64() {
        return if (min..=max).contains(&i) { Ok(i) } else { Err(range_problem(min, max, value)) };
    }
    if number.is_u64() {
        // Above i64::MAX, so above any range this function is asked for.
        return Err(range_problem(min, max, value));
    }
    // serde_json never holds NaN or infinities, so this is a finite float.
    let f = number.as_f64().unwrap_or(f64::NAN);
    if !f.is_finite() || f.fract() != 0.0 {
        return Err(format!("must be a whole number, got {value}"));
    }
    // `min` and `max` are small enough here to be exact in f64.
    if f < min as f64 || f > max as f64 {
        return Err(range_problem(min, max, value));
    }
    // In range and whole, so the cast is exact.
    Ok(f as i64)
}

fn range_problem(min: i64, max: i64, value: &Value) -> String {
    format!("must be {min}-{max}, got {value}")
}

/// Reads a boolean option. `null` means "not set": `Ok(None)`, keep the default.
fn boolean(value: &Value) -> Result<Option<bool>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        _ => Err(format!("must be true or false, got {}", shown(value))),
    }
}

/// Reads a string option. `null` means "not set": `Ok(None)`, keep the default.
fn string(value: &Value) -> Result<Option<&str>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        _ => Err(format!("must be a string, got {}", shown(value))),
    }
}

/// Picks the choice whose name is exactly `text`.
fn one_of<T: Copy>(choices: &[T], name: fn(T) -> &'static str, text: &str, value: &Value) -> Result<T, String> {
    choices.iter().copied().find(|c| name(*c) == text).ok_or_else(|| {
        let names: Vec<&str> = choices.iter().map(|c| name(*c)).collect();
        format!("must be one of {}, got {}", names.join(", "), shown(value))
    })
}

/// A value as it appears in an error message: JSON (so quotes and control characters are escaped and the
/// message stays on one line), cut to 64 characters so a pasted blob cannot flood `juju status`.
fn shown(value: &Value) -> String {
    const MAX: usize = 64;
    let text = value.to_string();
    if text.chars().count() <= MAX { text } else { format!("{}…", text.chars().take(MAX).collect::<String>()) }
}

/// Parses `save`: whitespace-separated pairs `<seconds> <changes>`, each 1..=2^31-1. Empty gives no points.
fn parse_save(text: &str) -> Option<Vec<SavePoint>> {
    let words: Vec<&str> = text.split_ascii_whitespace().collect();
    if !words.len().is_multiple_of(2) {
        return None;
    }
    let number = |word: &str| -> Option<u32> {
        if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u32 = word.parse().ok()?;
        (1..=i32::MAX.unsigned_abs()).contains(&n).then_some(n)
    };
    words.chunks_exact(2).map(|pair| Some(SavePoint { seconds: number(pair[0])?, changes: number(pair[1])? })).collect()
}

/// Parses a size in Redis's syntax: digits with an optional unit, case-insensitive: `b`, `k` (1000), `kb`
/// (1024), `m`, `mb`, `g`, `gb`. Empty or `0` means no limit (0). Leading and trailing whitespace is ignored.
fn parse_size(text: &str) -> Result<u64, String> {
    const FORMAT: &str =
        "must be a size such as 512mb or 2gb (a whole number with an optional unit b, k, kb, m, mb, g or gb)";
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(FORMAT.to_owned());
    }
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return Err(FORMAT.to_owned()),
    };
    let too_large = || format!("must be at most {} bytes", u64::MAX);
    let number: u64 = digits.parse().map_err(|_| too_large())?;
    number.checked_mul(multiplier).ok_or_else(too_large)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("test input must be an object, got {other}"),
        }
    }

    fn parse(v: Value) -> Result<RedisConfig, ConfigErrors> {
        RedisConfig::from_juju(&map(v))
    }

    fn message(v: Value) -> String {
        match parse(v) {
            Ok(cfg) => panic!("expected an error, got {cfg:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn missing_port_takes_the_default() {
        assert_eq!(parse(json!({})).unwrap(), RedisConfig::default());
        assert_eq!(parse(json!({})).unwrap().port, 6379);
        assert_eq!(RedisConfig::default().port, DEFAULT_PORT);
    }

    #[test]
    fn integer_port_is_accepted() {
        assert_eq!(parse(json!({"port": 8080})).unwrap().port, 8080);
        assert_eq!(parse(json!({"port": 1})).unwrap().port, 1);
        assert_eq!(parse(json!({"port": 65535})).unwrap().port, 65535);
    }

    #[test]
    fn float64_port_with_zero_fraction_is_accepted() {
        assert_eq!(parse(json!({"port": 8080.0})).unwrap().port, 8080);
        assert_eq!(parse(json!({"port": 65535.0})).unwrap().port, 65535);
        assert_eq!(parse(json!({"port": 1.0})).unwrap().port, 1);
    }

    #[test]
    fn config_get_json_text_is_accepted_as_juju_prints_it() {
        let from_text = |text: &str| RedisConfig::from_juju(&serde_json::from_str(text).unwrap());
        assert_eq!(from_text(r#"{"port":7000}"#).unwrap().port, 7000);
        assert_eq!(from_text(r#"{"port":7000.0}"#).unwrap().port, 7000);
        assert_eq!(from_text(r#"{"port":7e3}"#).unwrap().port, 7000);
    }

    #[test]
    fn out_of_range_ports_are_rejected_with_the_value() {
        assert_eq!(message(json!({"port": 70000})), "invalid config: port must be 1-65535, got 70000");
        assert_eq!(message(json!({"port": 0})), "invalid config: port must be 1-65535, got 0");
        assert_eq!(message(json!({"port": 65536})), "invalid config: port must be 1-65535, got 65536");
        assert_eq!(message(json!({"port": -1})), "invalid config: port must be 1-65535, got -1");
        assert_eq!(message(json!({"port": 70000.0})), "invalid config: port must be 1-65535, got 70000.0");
        assert_eq!(message(json!({"port": -6379.0})), "invalid config: port must be 1-65535, got -6379.0");
    }

    #[test]
    fn huge_ports_are_rejected_not_wrapped() {
        assert_eq!(
            message(json!({"port": u64::MAX})),
            "invalid config: port must be 1-65535, got 18446744073709551615"
        );
        assert_eq!(
            message(json!({"port": i64::MIN})),
            "invalid config: port must be 1-65535, got -9223372036854775808"
        );
        assert_eq!(message(json!({"port": 1e300})), "invalid config: port must be 1-65535, got 1e+300");
        assert_eq!(message(json!({"port": -1e300})), "invalid config: port must be 1-65535, got -1e+300");
        // 6379 + 2^64: would wrap to 6379 if cast through u64 or u16 first.
        assert!(message(json!({"port": 18446744073709557995.0})).starts_with("invalid config: port must be 1-65535"));
        // 6379 + 2^16 as an integer would wrap to 6379 in a u16 cast.
        assert_eq!(message(json!({"port": 71915})), "invalid config: port must be 1-65535, got 71915");
    }

    #[test]
    fn fractional_ports_are_rejected() {
        assert_eq!(message(json!({"port": 80.5})), "invalid config: port must be a whole number, got 80.5");
        assert_eq!(message(json!({"port": 6379.0001})), "invalid config: port must be a whole number, got 6379.0001");
        assert_eq!(message(json!({"port": 1e-300})), "invalid config: port must be a whole number, got 1e-300");
    }

    #[test]
    fn non_numbers_are_rejected_and_shown_as_json() {
        assert_eq!(message(json!({"port": "abc"})), r#"invalid config: port must be an integer, got "abc""#);
        assert_eq!(message(json!({"port": "6379"})), r#"invalid config: port must be an integer, got "6379""#);
        assert_eq!(message(json!({"port": true})), "invalid config: port must be an integer, got true");
        assert_eq!(message(json!({"port": null})), "invalid config: port must be an integer, got null");
        assert_eq!(message(json!({"port": [6379]})), "invalid config: port must be an integer, got [6379]");
        assert_eq!(message(json!({"port": {"a": 1}})), r#"invalid config: port must be an integer, got {"a":1}"#);
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let cfg = parse(json!({"port": 7000, "dummy": "x", "password": null, "nested": {"a": [1]}})).unwrap();
        assert_eq!(cfg.port, 7000);
    }

    #[test]
    fn errors_name_the_option_and_the_problem() {
        let err = parse(json!({"port": 0})).unwrap_err();
        assert_eq!(err.errors().len(), 1);
        assert_eq!(err.errors()[0].option(), "port");
        assert_eq!(err.errors()[0].problem(), "must be 1-65535, got 0");
        assert_eq!(err.errors()[0].to_string(), "port must be 1-65535, got 0");
    }

    #[test]
    fn several_errors_are_joined_into_one_message() {
        let errors = ConfigErrors(vec![
            ConfigError { option: "port", problem: "must be 1-65535, got 0".into() },
            ConfigError { option: "maxmemory", problem: "must be a size, got \"lots\"".into() },
        ]);
        assert_eq!(
            errors.to_string(),
            r#"invalid config: port must be 1-65535, got 0; maxmemory must be a size, got "lots""#
        );
    }

    #[test]
    fn config_errors_work_with_anyhow() {
        let err: anyhow::Error = parse(json!({"port": 0})).unwrap_err().into();
        assert_eq!(err.to_string(), "invalid config: port must be 1-65535, got 0");
    }

    #[test]
    fn odd_json_values_never_panic() {
        let odd = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-0.0),
            json!(0.0),
            json!(-1),
            json!(1),
            json!(6379),
            json!(65535),
            json!(65535.5),
            json!(65536),
            json!(i64::MIN),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(f64::MAX),
            json!(f64::MIN),
            json!(f64::MIN_POSITIVE),
            json!(f64::EPSILON),
            json!(-f64::EPSILON),
            json!(9007199254740993.0),
            json!(""),
            json!(" "),
            json!("6379"),
            json!("0x18eb"),
            json!("\u{0}"),
            json!("ünïcödé 🦀"),
            json!([]),
            json!([null]),
            json!({}),
            json!({"port": 6379}),
        ];
        for value in &odd {
            let outcome = parse(json!({ "port": value.clone() }));
            match outcome {
                Ok(cfg) => assert!(cfg.port >= 1, "{value} gave port 0"),
                Err(e) => {
                    let text = e.to_string();
                    assert!(text.starts_with("invalid config: port must be "), "{value}: {text}");
                    assert!(!text.contains('\n'), "status messages are one line: {text:?}");
                }
            }
            // Under any other key the value is ignored.
            assert_eq!(parse(json!({ "other": value.clone() })).unwrap(), RedisConfig::default());
        }
        // -0.0 is a whole number, but 0 is out of range.
        assert_eq!(message(json!({"port": -0.0})), "invalid config: port must be 1-65535, got -0.0");
    }

    // ---- The options of issue #7 ------------------------------------------------------------------------------

    #[test]
    fn defaults_are_the_documented_ones() {
        let cfg = RedisConfig::default();
        assert!(cfg.require_auth);
        assert_eq!(cfg.password, None);
        assert!(cfg.appendonly);
        assert_eq!(cfg.appendfsync, AppendFsync::Everysec);
        assert_eq!(
            cfg.save,
            vec![
                SavePoint { seconds: 3600, changes: 1 },
                SavePoint { seconds: 300, changes: 100 },
                SavePoint { seconds: 60, changes: 10000 }
            ]
        );
        assert_eq!(cfg.maxmemory, 0);
        assert_eq!(cfg.maxmemory_policy, MaxmemoryPolicy::Noeviction);
    }

    #[test]
    fn port_26379_is_reserved_for_sentinel() {
        assert_eq!(message(json!({"port": 26379})), "invalid config: port 26379 is reserved for Sentinel");
        assert_eq!(message(json!({"port": 26379.0})), "invalid config: port 26379 is reserved for Sentinel");
        assert_eq!(parse(json!({"port": 26378})).unwrap().port, 26378);
    }

    #[test]
    fn booleans_are_read_and_null_keeps_the_default() {
        let cfg = parse(json!({"require-auth": false, "appendonly": false})).unwrap();
        assert!(!cfg.require_auth && !cfg.appendonly);
        let cfg = parse(json!({"require-auth": null, "appendonly": null})).unwrap();
        assert!(cfg.require_auth && cfg.appendonly);
        assert_eq!(
            message(json!({"require-auth": "yes"})),
            r#"invalid config: require-auth must be true or false, got "yes""#
        );
        assert_eq!(message(json!({"appendonly": 1})), "invalid config: appendonly must be true or false, got 1");
    }

    /// `config-get --all --format=json` prints `null` for an option that has no value (no default, never set),
    /// as Juju's uniter fills the settings from the charm's defaults, nil included. The charm reads `null` as
    /// Juju means it, "unset": the option's default, exactly as if it were absent. For `save` that is the
    /// default snapshot points, not "" (no snapshots), which only an explicit empty string asks for.
    #[test]
    fn null_string_options_take_their_defaults() {
        let defaults = RedisConfig::default();
        for option in ["appendfsync", "save", "maxmemory", "maxmemory-policy"] {
            assert_eq!(parse(json!({ option: null })), Ok(defaults.clone()), "{option}: null");
            let from_text = RedisConfig::from_juju(&serde_json::from_str(&format!(r#"{{"{option}":null}}"#)).unwrap());
            assert_eq!(from_text, Ok(defaults.clone()), "{option}: null as config-get prints it");
        }
        // Beside set options, a null changes nothing else either.
        let cfg = parse(json!({
            "appendfsync": null, "save": null, "maxmemory": null, "maxmemory-policy": null,
            "port": 7000, "appendonly": false,
        }))
        .unwrap();
        assert_eq!(cfg, RedisConfig { port: 7000, appendonly: false, ..defaults.clone() });
        assert_eq!(cfg.appendfsync, AppendFsync::Everysec);
        assert_eq!(cfg.save, DEFAULT_SAVE.to_vec());
        assert_eq!(cfg.maxmemory, 0);
        assert_eq!(cfg.maxmemory_policy, MaxmemoryPolicy::Noeviction);
        // Unset is not empty: "" turns snapshots off and means no memory limit; for the two lists it is invalid.
        assert_eq!(parse(json!({"save": ""})).unwrap().save, Vec::new());
        assert_eq!(parse(json!({"maxmemory": ""})).unwrap().maxmemory, 0);
        assert!(parse(json!({"appendfsync": ""})).is_err() && parse(json!({"maxmemory-policy": ""})).is_err());
    }

    #[test]
    fn a_valid_password_is_kept_and_empty_means_generate() {
        let pw = "Abc!#$%&()*+,-./:;<=>?@[]^_`{|}~0123456789";
        assert_eq!(parse(json!({ "password": pw })).unwrap().password.as_deref(), Some(pw));
        assert_eq!(parse(json!({"password": ""})).unwrap().password, None);
        assert_eq!(parse(json!({"password": null})).unwrap().password, None);
        let exactly_16 = "a".repeat(16);
        assert!(parse(json!({ "password": exactly_16 })).is_ok());
        let exactly_512 = "z".repeat(512);
        assert!(parse(json!({ "password": exactly_512 })).is_ok());
    }

    #[test]
    fn bad_passwords_are_rejected_without_echoing_them() {
        let cases = [
            ("sh0rt-secret", "invalid config: password must be 16-512 characters long, got 12"),
            ("x".repeat(513).leak() as &str, "invalid config: password must be 16-512 characters long, got 513"),
            (
                "has space inside-secret",
                "invalid config: password may only contain printable ASCII characters other than space, \", ' and \\",
            ),
            (
                "tab\tinside-secret-xyz",
                "invalid config: password may only contain printable ASCII characters other than space, \", ' and \\",
            ),
            (
                "newline\ninside-secret",
                "invalid config: password may only contain printable ASCII characters other than space, \", ' and \\",
            ),
            (
                "double\"quote-secret-xyz",
                "invalid config: password may only contain printable ASCII characters other than space, \", ' and \\",
            ),
            (
                "single'quote-secret-xyz",
                "invalid config: password may only contain printable ASCII characters other than space, \", ' and \\",
            ),
            (
                "back\\slash-secret-xyz",
                "invalid config: password may only contain printable ASCII characters other than space, \", ' and \\",
            ),
            (
                "ünïcödé-secret-value-x",
                "invalid config: password may only contain printable ASCII characters other than space, \", ' and \\",
            ),
            (
                "nul\u{0}inside-secret-xyz",
                "invalid config: password may only contain printable ASCII characters other than space, \", ' and \\",
            ),
        ];
        for (pw, expected) in cases {
            let text = message(json!({ "password": pw }));
            assert_eq!(text, expected, "{pw:?}");
            for part in ["secret", "sh0rt", "inside", "quote", "slash", "xxxx"] {
                assert!(!text.contains(part), "the message leaks the password: {text}");
            }
        }
        assert_eq!(message(json!({"password": 1234567890123456u64})), "invalid config: password must be a string");
        assert_eq!(
            message(json!({"password": ["hunter2hunter2hunter2"]})),
            "invalid config: password must be a string"
        );
    }

    #[test]
    fn validate_password_is_public_and_silent_about_the_value() {
        assert!(validate_password("golden-test-password-0123456789").is_ok());
        let err = validate_password("hunter2").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn debug_output_hides_the_password() {
        let cfg = parse(json!({"password": "correct-horse-battery-staple"})).unwrap();
        let text = format!("{cfg:?}");
        assert!(!text.contains("correct-horse") && text.contains("<redacted>"), "{text}");
        assert!(format!("{:?}", RedisConfig::default()).contains("password: None"));
    }

    #[test]
    fn appendfsync_takes_one_of_three() {
        for (text, policy) in
            [("always", AppendFsync::Always), ("everysec", AppendFsync::Everysec), ("no", AppendFsync::No)]
        {
            assert_eq!(parse(json!({ "appendfsync": text })).unwrap().appendfsync, policy);
            assert_eq!(policy.as_str(), text);
        }
        assert_eq!(
            message(json!({"appendfsync": "Always"})),
            r#"invalid config: appendfsync must be one of always, everysec, no, got "Always""#
        );
        assert_eq!(
            message(json!({"appendfsync": ""})),
            r#"invalid config: appendfsync must be one of always, everysec, no, got """#
        );
    }

    #[test]
    fn maxmemory_policy_takes_one_of_eight() {
        let names = [
            "noeviction",
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
        ];
        for name in names {
            assert_eq!(parse(json!({ "maxmemory-policy": name })).unwrap().maxmemory_policy.as_str(), name);
        }
        assert_eq!(MaxmemoryPolicy::ALL.len(), 8);
        assert_eq!(
            message(json!({"maxmemory-policy": "lru"})),
            format!(r#"invalid config: maxmemory-policy must be one of {}, got "lru""#, names.join(", "))
        );
    }

    #[test]
    fn save_takes_pairs_of_positive_numbers() {
        let save = |text: &str| parse(json!({ "save": text })).map(|c| c.save);
        assert_eq!(save("").unwrap(), vec![]);
        assert_eq!(save("   ").unwrap(), vec![]);
        assert_eq!(save("900 1").unwrap(), vec![SavePoint { seconds: 900, changes: 1 }]);
        assert_eq!(
            save(" 900  1\t300 10 ").unwrap(),
            vec![SavePoint { seconds: 900, changes: 1 }, SavePoint { seconds: 300, changes: 10 }]
        );
        assert_eq!(
            save("2147483647 2147483647").unwrap(),
            vec![SavePoint { seconds: i32::MAX as u32, changes: i32::MAX as u32 }]
        );
        for bad in [
            "900",
            "900 1 300",
            "0 1",
            "1 0",
            "-1 5",
            "+5 5",
            "1.5 2",
            "abc def",
            "2147483648 1",
            "99999999999 1",
            "900 1;",
            "900\u{0} 1",
        ] {
            let text = message(json!({ "save": bad }));
            assert!(
                text.starts_with(
                    "invalid config: save must be pairs of whole numbers `<seconds> <changes>`, each 1-2147483647, got "
                ),
                "{bad:?}: {text}"
            );
            assert!(!text.contains('\n'));
        }
        assert_eq!(message(json!({"save": 900})), "invalid config: save must be a string, got 900");
    }

    #[test]
    fn maxmemory_takes_redis_sizes() {
        let size = |text: &str| parse(json!({ "maxmemory": text })).map(|c| c.maxmemory);
        let cases: [(&str, u64); 16] = [
            ("", 0),
            ("0", 0),
            ("0mb", 0),
            ("100", 100),
            ("100b", 100),
            ("1k", 1000),
            ("1kb", 1024),
            ("1K", 1000),
            ("1KB", 1024),
            ("2m", 2_000_000),
            ("2mb", 2 * 1024 * 1024),
            ("512Mb", 512 * 1024 * 1024),
            ("3g", 3_000_000_000),
            ("3gB", 3 * 1024 * 1024 * 1024),
            (" 64mb ", 64 * 1024 * 1024),
            ("18446744073709551615", u64::MAX),
        ];
        for (text, bytes) in cases {
            assert_eq!(size(text).unwrap(), bytes, "{text:?}");
        }
        for junk in ["mb", "-1", "+1", "1.5gb", "1 gb", "1tb", "1gbb", "lots", "0x10", "1e9", "١٢٣"] {
            let text = size(junk).unwrap_err().to_string();
            assert!(
                text.starts_with("invalid config: maxmemory must be a size such as 512mb or 2gb"),
                "{junk:?}: {text}"
            );
        }
        for overflow in ["18446744073709551616", "18014398509481984kb", "99999999999999999999999", "17179869184gb"] {
            assert_eq!(
                size(overflow).unwrap_err().to_string(),
                format!("invalid config: maxmemory must be at most 18446744073709551615 bytes, got \"{overflow}\""),
            );
        }
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let text = message(json!({ "maxmemory-policy": "x".repeat(10_000) }));
        assert!(text.len() < 300 && text.ends_with('…'), "{text}");
    }

    #[test]
    fn every_invalid_option_is_reported_at_once() {
        let text = message(json!({
            "port": 26379, "require-auth": "no", "password": "short", "appendonly": "yes",
            "appendfsync": "sometimes", "save": "1", "maxmemory": "lots", "maxmemory-policy": "random",
        }));
        for option in [
            "port ",
            "require-auth ",
            "password ",
            "appendonly ",
            "appendfsync ",
            "save ",
            "maxmemory ",
            "maxmemory-policy ",
        ] {
            assert!(
                text.contains(&format!("; {option}")) || text.starts_with(&format!("invalid config: {option}")),
                "{option}: {text}"
            );
        }
        assert_eq!(text.matches("; ").count(), 7, "{text}");
        assert!(!text.contains("short"), "{text}");
    }

    #[test]
    fn odd_values_under_every_option_never_panic() {
        let odd = [
            json!(null),
            json!(true),
            json!(0),
            json!(-1.5),
            json!(u64::MAX),
            json!(""),
            json!("\u{0}\n"),
            json!([]),
            json!({}),
        ];
        for option in OPTIONS {
            for value in &odd {
                match parse(json!({ option.name: value.clone() })) {
                    Ok(_) => {}
                    Err(e) => {
                        let text = e.to_string();
                        assert!(text.starts_with(&format!("invalid config: {} ", option.name)), "{text}");
                        assert!(!text.contains('\n'), "{text:?}");
                    }
                }
            }
        }
    }

    /// The defaults here and in config.yaml must agree, every option in config.yaml must be validated, and each
    /// with the type config.yaml declares.
    #[test]
    fn defaults_and_options_match_config_yaml() {
        let meta = crate::meta::CharmMeta::shipped().unwrap();
        let mut names: Vec<&str> = meta.options.iter().map(|o| o.name.as_str()).collect();
        names.sort_unstable();
        let mut ours: Vec<&str> = OPTIONS.iter().map(|o| o.name).collect();
        ours.sort_unstable();
        assert_eq!(names, ours, "config.yaml options and OPTIONS differ");
        for (name, kind) in options() {
            assert_eq!(meta.option(name).map(|o| o.kind), Some(kind), "type of {name}");
        }

        // Feeding config.yaml's defaults through the validators gives RedisConfig::default().
        let defaults: Map<String, Value> = meta.options.iter().map(|o| (o.name.clone(), o.default.clone())).collect();
        assert_eq!(RedisConfig::from_juju(&defaults).unwrap(), RedisConfig::default());
        assert_eq!(meta.option("port").unwrap().default.as_u64(), Some(u64::from(DEFAULT_PORT)));
    }
}
