//! juju/cmd output formatting for the hook tools: `smart` (the default: raw strings, True/False,
//! nothing for nil or ""), `json` (compact, one line) and `yaml`; plus `-o/--output <file>`.

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Format {
    Smart,
    Json,
    Yaml,
}

impl Format {
    /// Parses `--format`; the error is the flag-value error (exit 2).
    pub fn parse(v: Option<&str>) -> Result<Format, String> {
        match v {
            None | Some("smart") => Ok(Format::Smart),
            Some("json") => Ok(Format::Json),
            Some("yaml") => Ok(Format::Yaml),
            Some(other) => Err(format!("invalid value {other:?} for flag --format: unknown format {other:?}")),
        }
    }
}

fn yaml(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        _ => serde_yaml::to_string(v).unwrap_or_default(),
    }
}

/// Renders a value as the tool prints it (including the trailing newline, or nothing at all).
pub fn render(format: Format, v: &Value) -> String {
    match format {
        Format::Json => format!("{}\n", serde_json::to_string(v).unwrap_or_else(|_| "null".into())),
        Format::Yaml => yaml(v),
        Format::Smart => match v {
            Value::Null => String::new(),
            Value::String(s) if s.is_empty() => String::new(),
            Value::String(s) => format!("{s}\n"),
            Value::Bool(b) => if *b { "True\n" } else { "False\n" }.to_string(),
            Value::Array(a) if a.iter().all(Value::is_string) => {
                if a.is_empty() {
                    String::new()
                } else {
                    let items: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                    format!("{}\n", items.join("\n"))
                }
            }
            other => yaml(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn smart_format_rules() {
        assert_eq!(render(Format::Smart, &json!("abc")), "abc\n");
        assert_eq!(render(Format::Smart, &json!("")), "");
        assert_eq!(render(Format::Smart, &Value::Null), "");
        assert_eq!(render(Format::Smart, &json!(true)), "True\n");
        assert_eq!(render(Format::Smart, &json!(["a", "b"])), "a\nb\n");
        assert_eq!(render(Format::Smart, &json!(6379)), "6379\n");
        assert_eq!(render(Format::Smart, &json!({"a": "b"})), "a: b\n");
    }

    #[test]
    fn json_and_yaml() {
        assert_eq!(render(Format::Json, &json!(true)), "true\n");
        assert_eq!(render(Format::Json, &Value::Null), "null\n");
        assert_eq!(render(Format::Json, &json!({"port": 6379})), "{\"port\":6379}\n");
        assert_eq!(render(Format::Yaml, &Value::Null), "");
        assert_eq!(render(Format::Yaml, &json!({"a": 1})), "a: 1\n");
        assert!(Format::parse(Some("xml")).is_err());
    }
}
