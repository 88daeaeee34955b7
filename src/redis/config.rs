//! The charm's Juju config, validated into a typed [`RedisConfig`].
//!
//! The config-changed handler reads `config-get --all --format json` and passes the map it gets to
//! [`RedisConfig::from_juju`]. If that returns [`ConfigErrors`], the handler shows its `Display` text as the
//! `blocked` status message and does not call `pod-spec-set`. If it returns a config, the handler gives it to
//! [`crate::redis::podspec::render_pod_spec`].
//!
//! The controller already type-checks `juju config` values (reference §0.13), so these checks catch what it
//! cannot: ranges, and numbers that arrive as float64 through JSON-RPC (`8080` or `8080.0`, §0.8).
//!
//! **Adding an option.** Put its default in [`RedisConfig::default`] (the only place for defaults), add a field,
//! and add one row to `OPTIONS` that names the option and validates its value into that field.

use std::fmt;

use serde_json::{Map, Value};

/// The default of the `port` option, as in `config.yaml`.
pub const DEFAULT_PORT: u16 = 6379;

/// The charm's config after validation. Every field holds a value that is safe to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// The TCP port redis-server listens on. The container port and the probes use it too.
    pub port: u16,
}

impl Default for RedisConfig {
    /// The `config.yaml` defaults, used for any option missing from config-get's output.
    fn default() -> Self {
        RedisConfig { port: DEFAULT_PORT }
    }
}

/// One config option: its name in `config.yaml`, and how a value given for it is checked and stored.
struct OptionSpec {
    name: &'static str,
    /// Validates `value` and stores it in the config. `Err` holds the problem, worded to follow the option's
    /// name: "must be 1-65535, got 70000".
    apply: fn(&mut RedisConfig, &Value) -> Result<(), String>,
}

/// Every option the charm reads. Options that are missing from config-get's output keep their defaults.
const OPTIONS: &[OptionSpec] = &[OptionSpec {
    name: "port",
    apply: |cfg, value| {
        let port = integer_in(value, 1, u16::MAX.into())?;
        cfg.port = u16::try_from(port).map_err(|_| range_problem(1, u16::MAX.into(), value))?;
        Ok(())
    },
}];

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
        assert_eq!(parse(json!({})).unwrap(), RedisConfig { port: 6379 });
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

    /// The defaults here and in config.yaml must agree, and every option in config.yaml must be validated.
    #[test]
    fn defaults_and_options_match_config_yaml() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let options = yaml["options"].as_mapping().unwrap();
        let mut names: Vec<&str> = options.keys().map(|k| k.as_str().unwrap()).collect();
        names.sort_unstable();
        let mut ours: Vec<&str> = OPTIONS.iter().map(|o| o.name).collect();
        ours.sort_unstable();
        assert_eq!(names, ours, "config.yaml options and OPTIONS differ");

        // Feeding config.yaml's defaults through the validators gives RedisConfig::default().
        let mut defaults = Map::new();
        for (name, option) in options {
            let default = serde_json::to_value(&option["default"]).unwrap();
            defaults.insert(name.as_str().unwrap().to_owned(), default);
        }
        assert_eq!(RedisConfig::from_juju(&defaults).unwrap(), RedisConfig::default());
        assert_eq!(options["port"]["default"].as_u64(), Some(u64::from(DEFAULT_PORT)));
    }
}
