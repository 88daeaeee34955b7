//! A charm's `assumes:` against what the model offers, checked at deploy as Juju's controller checks it.
//!
//! The rules, with where Juju has them (juju/juju 3.6-rc1 = 2f9226cf):
//! - **When**: deploying a charm with `assumes` (`apiserver/facades/client/application/deploy.go`
//!   `assertCharmAssumptions`); a requirement the model does not meet refuses the deploy (`--force`, which
//!   juju-local has not, is the only way past it).
//! - **The model's features** on Kubernetes (`core/assumes/features.go` `JujuFeature`, `K8sAPIFeature`): `juju`
//!   at the model's agent version and `k8s-api` at the cluster's version, which juju-local reports as
//!   `CLOUD_API_VERSION` (1.21.0) to hooks.
//! - **Expressions** (juju/charm `assumes` parser, evaluated by `core/assumes/sat_checker.go`): a feature name,
//!   optionally `>= V` or `< V`; `any-of:` and `all-of:` lists nest; the top level is all-of. A feature or an
//!   expression without a version is met by the feature being there.
//! - **The error** (`sat_checker.go` `satisfyCompositeExpr`, `error.go` `notSatisfiedError`, `features.go`
//!   `featureVersionMismatchErr`, `featureMissingErr`): `Charm cannot be deployed because:` then one `  - ` line
//!   per unmet expression, nested lists indented two spaces more.

use anyhow::{Result, bail};
use serde_json::Value;

use crate::model::Version;

/// The Kubernetes version juju-local stands in for (what hooks see as `CLOUD_API_VERSION`).
pub const K8S_API_VERSION: Version = Version(1, 21, 0);

/// Checks `assumes` (metadata.yaml's value, if any) against a model of Juju `juju`.
pub fn check(assumes: Option<&Value>, juju: Version) -> Result<()> {
    let Some(list) = assumes else { return Ok(()) };
    let Some(items) = list.as_array() else { bail!("invalid metadata.yaml: assumes must be a list") };
    let errors = unmet(items, false, juju)?;
    if errors.is_empty() {
        return Ok(());
    }
    bail!("{}", not_satisfied("Charm cannot be deployed because:", &errors).trim_end())
}

/// The unmet sub-expressions of a composite (`any_of` or all-of), as error texts; empty when it is met.
fn unmet(items: &[Value], any_of: bool, juju: Version) -> Result<Vec<String>> {
    let mut errors = Vec::new();
    for item in items {
        match expr(item, juju)? {
            None if any_of => return Ok(Vec::new()),
            None => {}
            Some(e) => errors.push(e),
        }
    }
    Ok(errors)
}

/// One expression: `None` when met, else why not.
fn expr(item: &Value, juju: Version) -> Result<Option<String>> {
    if let Some(text) = item.as_str() {
        return feature(text, juju);
    }
    let Some((kind, sub)) = item.as_object().and_then(|m| m.iter().next().filter(|_| m.len() == 1)) else {
        bail!("invalid metadata.yaml: assumes: unsupported expression {item}");
    };
    let Some(sub) = sub.as_array() else { bail!("invalid metadata.yaml: assumes: {kind} must be a list") };
    let (any_of, message) = match kind.as_str() {
        "any-of" => (true, "charm requires at least one of the following:"),
        "all-of" => (false, "charm requires all of the following:"),
        other => bail!("invalid metadata.yaml: assumes: unsupported expression {other:?}"),
    };
    let errors = unmet(sub, any_of, juju)?;
    Ok((!errors.is_empty()).then(|| not_satisfied(message, &errors)))
}

/// `name`, `name >= V` or `name < V`.
fn feature(text: &str, juju: Version) -> Result<Option<String>> {
    let bad = || anyhow::anyhow!("invalid metadata.yaml: assumes: malformed expression {text:?}");
    let words: Vec<&str> = text.split_whitespace().collect();
    let (name, constraint) = match words[..] {
        [name] => (name, None),
        [name, op @ (">=" | "<"), v] => (name, Some((op, parse_version(v).ok_or_else(bad)?))),
        _ => return Err(bad()),
    };
    let have = match name {
        "juju" => juju,
        "k8s-api" => K8S_API_VERSION,
        other => return Ok(Some(format!("charm requires feature {other:?} but model does not support it"))),
    };
    let Some((op, want)) = constraint else { return Ok(None) };
    let met = if op == ">=" { have >= want } else { have < want };
    if met {
        return Ok(None);
    }
    Ok(Some(match name {
        "juju" => format!("charm requires Juju version {op} {want}, model has version {have}"),
        _ => format!("charm requires Kubernetes version {op} {want}, model is running on version {have}"),
    }))
}

/// `3.1` or `3.1.9` (juju/version's `Number`, a missing patch being 0).
fn parse_version(v: &str) -> Option<Version> {
    let parts: Vec<u32> = v.split('.').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    match parts[..] {
        [a, b] => Some(Version(a, b, 0)),
        [a, b, c] => Some(Version(a, b, c)),
        _ => None,
    }
}

/// `message`, then each error as `- error`, every line of it indented two spaces (`notSatisfiedErr.Error`).
fn not_satisfied(message: &str, errors: &[String]) -> String {
    let mut out = format!("{message}\n");
    for e in errors {
        for line in format!("- {}", e.trim_matches('\n')).lines() {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn the_sidecar_charm_s_assumes_are_met_from_3_1_and_refused_before() {
        let a = yaml("[k8s-api, juju >= 3.1]");
        assert!(check(Some(&a), Version(3, 1, 0)).is_ok());
        assert!(check(Some(&a), Version(4, 0, 0)).is_ok());
        let e = check(Some(&a), Version(3, 0, 4)).unwrap_err().to_string();
        assert_eq!(
            e,
            "Charm cannot be deployed because:\n  - charm requires Juju version >= 3.1.0, model has version 3.0.4"
        );
        assert!(check(None, Version(2, 9, 31)).is_ok());
    }

    #[test]
    fn composites_nest_and_unknown_features_are_unmet() {
        let a = yaml("[{any-of: [juju >= 4.0, k8s-api >= 1.30]}, foo]");
        let e = check(Some(&a), Version(3, 6, 0)).unwrap_err().to_string();
        assert_eq!(
            e,
            "Charm cannot be deployed because:\n  - charm requires at least one of the following:\n    - charm requires \
             Juju version >= 4.0.0, model has version 3.6.0\n    - charm requires Kubernetes version >= 1.30.0, model is \
             running on version 1.21.0\n  - charm requires feature \"foo\" but model does not support it"
        );
        assert!(check(Some(&yaml("[{any-of: [juju >= 4.0, juju < 3.7]}]")), Version(3, 6, 0)).is_ok());
        assert!(check(Some(&yaml("[juju >= three]")), Version(3, 6, 0)).unwrap_err().to_string().contains("malformed"));
    }
}
