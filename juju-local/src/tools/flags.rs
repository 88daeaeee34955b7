//! A gnuflag-compatible command-line parser for the hook tools (reference §3.0): `--long v`,
//! `--long=v`, `-r 3`, `-r3`, clusters of one-letter flags after a single dash, `--` ends flags, and
//! flags may follow positional arguments. Errors use gnuflag's wording; callers exit 2 on them.

use std::collections::{BTreeMap, BTreeSet};

/// One flag a tool accepts. `value` false means a boolean flag.
#[derive(Clone, Copy, Debug)]
pub struct Flag {
    pub long: &'static str,
    pub short: Option<char>,
    pub value: bool,
}

pub const fn val(long: &'static str, short: Option<char>) -> Flag {
    Flag { long, short, value: true }
}

pub const fn bool_flag(long: &'static str, short: Option<char>) -> Flag {
    Flag { long, short, value: false }
}

#[derive(Debug, Default)]
pub struct Parsed {
    /// long name → (the flag as typed, e.g. `-r`, and its value).
    values: BTreeMap<&'static str, (String, String)>,
    bools: BTreeSet<&'static str>,
    pub args: Vec<String>,
    pub help: bool,
}

impl Parsed {
    pub fn value(&self, long: &str) -> Option<&str> {
        self.values.get(long).map(|(_, v)| v.as_str())
    }
    /// The flag as the user typed it (for error messages).
    pub fn typed(&self, long: &str) -> String {
        self.values.get(long).map(|(t, _)| t.clone()).unwrap_or_else(|| format!("--{long}"))
    }
    pub fn has(&self, long: &str) -> bool {
        self.bools.contains(long)
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Parses `argv` (without the program name) against `flags`.
pub fn parse(flags: &[Flag], argv: &[String]) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        if arg == "--" {
            p.args.extend(argv[i..].iter().cloned());
            break;
        }
        if let Some(body) = arg.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            if name == "help" {
                p.help = true;
                continue;
            }
            let typed = format!("--{name}");
            let Some(f) = flags.iter().find(|f| f.long == name) else {
                return Err(format!("flag provided but not defined: {typed}"));
            };
            if f.value {
                let v = match inline {
                    Some(v) => v,
                    None if i < argv.len() => {
                        i += 1;
                        argv[i - 1].clone()
                    }
                    None => return Err(format!("flag needs an argument: {typed}")),
                };
                p.values.insert(f.long, (typed, v));
            } else {
                match inline.as_deref().map(parse_bool) {
                    None | Some(Some(true)) => {
                        p.bools.insert(f.long);
                    }
                    Some(Some(false)) => {
                        p.bools.remove(f.long);
                    }
                    Some(None) => {
                        return Err(format!("invalid boolean value {:?} for flag {typed}", inline.unwrap_or_default()));
                    }
                }
            }
            continue;
        }
        if arg.len() > 1 && arg.starts_with('-') {
            let chars: Vec<char> = arg[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                j += 1;
                if c == 'h' {
                    p.help = true;
                    continue;
                }
                let typed = format!("-{c}");
                let Some(f) = flags.iter().find(|f| f.short == Some(c)) else {
                    return Err(format!("flag provided but not defined: {typed}"));
                };
                if f.value {
                    let rest: String = chars[j..].iter().collect();
                    let rest = rest.strip_prefix('=').map(str::to_string).unwrap_or(rest);
                    let v = if !rest.is_empty() {
                        rest
                    } else if i < argv.len() {
                        i += 1;
                        argv[i - 1].clone()
                    } else {
                        return Err(format!("flag needs an argument: {typed}"));
                    };
                    p.values.insert(f.long, (typed, v));
                    break;
                }
                p.bools.insert(f.long);
            }
            continue;
        }
        p.args.push(arg.clone());
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &[Flag] =
        &[val("format", None), val("relation", Some('r')), bool_flag("app", None), bool_flag("all", Some('a'))];

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn long_forms_and_mixed_positionals() {
        let p = parse(FLAGS, &args(&["key", "--format", "json", "unit/0", "--app"])).unwrap();
        assert_eq!(p.value("format"), Some("json"));
        assert_eq!(p.args, ["key", "unit/0"]);
        assert!(p.has("app"));
        let p = parse(FLAGS, &args(&["--format=yaml"])).unwrap();
        assert_eq!(p.value("format"), Some("yaml"));
    }

    #[test]
    fn short_forms() {
        assert_eq!(parse(FLAGS, &args(&["-r", "3"])).unwrap().value("relation"), Some("3"));
        assert_eq!(parse(FLAGS, &args(&["-r3"])).unwrap().value("relation"), Some("3"));
        assert_eq!(parse(FLAGS, &args(&["-rdb:3"])).unwrap().value("relation"), Some("db:3"));
        let p = parse(FLAGS, &args(&["-ar", "1"])).unwrap();
        assert!(p.has("all"));
        assert_eq!(p.typed("relation"), "-r");
    }

    #[test]
    fn double_dash_ends_flags() {
        let p = parse(FLAGS, &args(&["--", "-x", "--format"])).unwrap();
        assert_eq!(p.args, ["-x", "--format"]);
    }

    #[test]
    fn gnuflag_errors() {
        assert_eq!(parse(FLAGS, &args(&["--nope"])).unwrap_err(), "flag provided but not defined: --nope");
        assert_eq!(parse(FLAGS, &args(&["--format"])).unwrap_err(), "flag needs an argument: --format");
        // A single dash with a long name is a cluster of one-letter flags.
        assert_eq!(parse(FLAGS, &args(&["-format"])).unwrap_err(), "flag provided but not defined: -f");
        assert!(parse(FLAGS, &args(&["--help"])).unwrap().help);
    }
}
