//! The few Go standard-library behaviours Pebble's rules rest on, re-done in Rust so the stand-in accepts and
//! prints exactly what Pebble does: `time.ParseDuration` and `time.Duration.String` (every duration in a layer,
//! `internals/plan/types.go` `OptionalDuration`, and the `timeout` query of `GET /v1/changes/{id}/wait`), and
//! shell-like splitting of a command (`github.com/canonical/x-go/strutil/shlex`, used by
//! `plan.Service.ParseCommand` and the exec checker): Pebble never runs a command through a shell.

use std::time::Duration;

/// Go's `time.ParseDuration`: a sequence of decimal numbers with an optional fraction and a unit each
/// (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), e.g. `1.5s`, `1m30s`; `0` alone is allowed. Negative durations
/// parse (as Go does) but are returned as an error here, since no Pebble field can use one.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {}", super::golib::quote(text));
    let mut s = text;
    let negative = s.starts_with('-');
    if let Some(rest) = s.strip_prefix('-').or_else(|| s.strip_prefix('+')) {
        s = rest;
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: f64 = 0.0;
    while !s.is_empty() {
        let digits = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
        let number = &s[..digits];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(invalid());
        }
        s = &s[digits..];
        let unit_len = s.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(s.len());
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let ns_per: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {}", quote(text))),
            _ => return Err(format!("time: unknown unit {} in duration {}", quote(unit), quote(text))),
        };
        let value: f64 = number.parse().map_err(|_| invalid())?;
        total += value * ns_per;
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    if negative && total > 0.0 {
        return Err(format!("negative duration {}", quote(text)));
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// Go's `time.Duration.String`: `0s`, `500ms`, `1.5s`, `1m30s`, `2h0m0s`.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    fn frac(value: u128, digits: u32) -> String {
        let unit = 10u128.pow(digits);
        let (whole, rest) = (value / unit, value % unit);
        if rest == 0 {
            return whole.to_string();
        }
        let mut f = format!("{rest:0width$}", width = digits as usize);
        while f.ends_with('0') {
            f.pop();
        }
        format!("{whole}.{f}")
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", frac(ns, 3));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", frac(ns, 6));
    }
    let (hours, rest) = (ns / 3_600_000_000_000, ns % 3_600_000_000_000);
    let (minutes, rest) = (rest / 60_000_000_000, rest % 60_000_000_000);
    let seconds = frac(rest, 9);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// Go's `%q` of a string, close enough for messages: JSON string escaping.
pub fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Splits a command line like `shlex.Split`: words separated by whitespace, `'…'` quoting literally, `"…"`
/// quoting with backslash escapes, a backslash escaping the next character outside quotes, and `#` starting a
/// comment at the beginning of a word.
pub fn shlex_split(input: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        if first == '#' {
            // A comment to the end of the line.
            for c in chars.by_ref() {
                if c == '\n' {
                    break;
                }
            }
            continue;
        }
        let mut word = String::new();
        while let Some(c) = chars.next() {
            match c {
                c if c.is_whitespace() => break,
                '\\' => match chars.next() {
                    Some(n) => word.push(n),
                    None => return Err("EOF found after escape character".into()),
                },
                '\'' => loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(n) => word.push(n),
                        None => return Err("EOF found when expecting closing quote".into()),
                    }
                },
                '"' => loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(n) => word.push(n),
                            None => return Err("EOF found when expecting closing quote".into()),
                        },
                        Some(n) => word.push(n),
                        None => return Err("EOF found when expecting closing quote".into()),
                    }
                },
                c => word.push(c),
            }
        }
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_like_go() {
        let cases = [("1s", "1s"), ("500ms", "500ms"), ("1.5s", "1.5s"), ("90s", "1m30s"), ("2h", "2h0m0s")];
        for (text, shown) in cases {
            assert_eq!(format_duration(parse_duration(text).unwrap()), shown, "{text}");
        }
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("10").unwrap_err().contains("missing unit"));
        assert!(parse_duration("1x").is_err());
        assert_eq!(format_duration(Duration::from_micros(1500)), "1.5ms");
    }

    #[test]
    fn shlex_splits_without_a_shell() {
        let words = shlex_split(r#"redis-server --port 6379 'a b' "c \"d\"" e\ f # tail"#).unwrap();
        assert_eq!(words, ["redis-server", "--port", "6379", "a b", "c \"d\"", "e f"]);
        assert!(shlex_split("'open").is_err());
        assert!(shlex_split("x \\").is_err());
    }
}
