//! OCI image references, checked against the grammar `docker pull`, containerd and Kubernetes use
//! (github.com/distribution/reference `regexp.go` and `reference.go`, with go-digest's algorithms).
//!
//! ```text
//! reference      := name [ ":" tag ] [ "@" digest ]
//! name           := [ domain "/" ] path-component { "/" path-component }      (at most 255 characters)
//! domain         := host [ ":" port ]
//! host           := domain-component { "." domain-component } | "[" ipv6 "]"
//! domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
//! port           := [0-9]+
//! path-component := [a-z0-9]+ { separator [a-z0-9]+ }       separator := "." | "_" | "__" | "-"+
//! tag            := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//! digest         := "sha256:" 64 hex | "sha384:" 96 hex | "sha512:" 128 hex   (lowercase hex)
//! ```
//!
//! The image path of the `oci-image` resource goes into the pod spec (`imagePath`) and becomes the workload
//! version `juju status` shows, so anything else (quotes, `$(...)`, backticks, spaces, invisible Unicode, an
//! argument such as `--privileged`, a 60 KB string) is refused here with a short reason. [`shown`] gives the
//! bounded, escaped prefix of a refused value that a status message may quote.

/// The longest name (the reference without its tag and digest) distribution/reference accepts.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// The longest tag.
pub const TAG_MAX: usize = 128;
/// How many characters of a refused value [`shown`] keeps (before escaping).
const SHOWN_CHARS: usize = 24;
/// The most [`shown`] ever returns, escapes and ellipsis included.
pub const SHOWN_MAX: usize = 40;

/// A reference split into its parts (borrowed from the checked text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// The registry, `host[:port]`, when the reference names one.
    pub domain: Option<&'a str>,
    /// The repository path (`library/redis`, `redis`).
    pub path: &'a str,
    pub tag: Option<&'a str>,
    /// `algorithm:hex`.
    pub digest: Option<&'a str>,
}

/// Checks `text` against the reference grammar; `Err` says what is wrong, never quoting the value.
pub fn parse(text: &str) -> Result<ImageRef<'_>, &'static str> {
    if text.is_empty() {
        return Err("it is empty");
    }
    if !text.chars().all(allowed_char) {
        return Err("it holds a character other than letters, digits and . _ - : / @");
    }
    let (rest, digest) = match text.split_once('@') {
        Some((_, d)) if d.contains('@') => return Err("it has more than one '@'"),
        Some((r, d)) => (r, Some(d)),
        None => (text, None),
    };
    if let Some(d) = digest
        && !valid_digest(d)
    {
        return Err("the digest is not sha256:<64 hex>, sha384:<96 hex> or sha512:<128 hex> (lowercase)");
    }
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].find(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag
        && !valid_tag(t)
    {
        return Err("the tag is not 1-128 letters, digits, '_', '.' or '-' starting with a letter, digit or '_'");
    }
    if name.is_empty() {
        return Err("it has no repository name");
    }
    if name.len() > NAME_TOTAL_LENGTH_MAX {
        return Err("the repository name is longer than 255 characters");
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, path)) if valid_domain(first) => (Some(first), path),
        // Not a registry, and not a path component either (which the grammar would take it for).
        Some((first, _))
            if !valid_path_component(first)
                && (first.contains([':', '.']) || first.chars().any(|c| c.is_ascii_uppercase())) =>
        {
            return Err("the registry is not host[:port]");
        }
        _ => (None, name),
    };
    if !path.split('/').all(valid_path_component) {
        return Err("a path component is not lowercase letters and digits joined by '.', '_', '__' or '-'");
    }
    Ok(ImageRef { domain, path, tag, digest })
}

/// The characters any part of a reference may hold (brackets for an IPv6 registry).
fn allowed_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/' | '@' | '[' | ']')
}

fn alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum_lower(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        match b[i] {
            b'.' => i += 1,
            b'_' if b.get(i + 1) == Some(&b'_') => i += 2,
            b'_' => i += 1,
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// `host[:port]`, host a domain name or a bracketed IPv6 address.
fn valid_domain(s: &str) -> bool {
    let (host_ok, port) = if let Some(inner) = s.strip_prefix('[') {
        let Some((addr, after)) = inner.split_once(']') else { return false };
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(p) => Some(p),
                None => return false,
            },
        };
        (!addr.is_empty() && addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':'), port)
    } else {
        let (host, port) = match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        (host.split('.').all(valid_domain_component), port)
    };
    host_ok && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
}

/// `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`
fn valid_domain_component(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(f), Some(l)) => {
            f.is_ascii_alphanumeric()
                && l.is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        }
        _ => false,
    }
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(s: &str) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let b = s.as_bytes();
    !b.is_empty() && b.len() <= TAG_MAX && word(b[0]) && b.iter().all(|c| word(*c) || *c == b'.' || *c == b'-')
}

/// The digests go-digest can verify: sha256, sha384, sha512 with their exact lengths of lowercase hex.
fn valid_digest(s: &str) -> bool {
    let Some((alg, hex)) = s.split_once(':') else { return false };
    let len = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len && hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// A refused value as a status message may show it: its first few characters, every one outside printable
/// ASCII (and quotes, backslashes) escaped, `…` when cut; never more than [`SHOWN_MAX`] characters.
pub fn shown(value: &str) -> String {
    let mut out = String::new();
    for (n, c) in value.chars().enumerate() {
        let esc: String = c.escape_default().collect();
        if n >= SHOWN_CHARS || out.chars().count() + esc.chars().count() > SHOWN_MAX - 1 {
            out.push('…');
            return out;
        }
        out.push_str(&esc);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEX64: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn real_references_are_accepted_and_split() {
        let d = format!("sha256:{HEX64}");
        let ok = [
            "docker.io/library/redis:7.0".to_string(),
            "redis:7.0".into(),
            "redis".into(),
            "localhost:5000/x/y:tag".into(),
            "localhost/redis".into(),
            format!("ghcr.io/a/b@{d}"),
            format!("registry.example.com:443/a/b:tag@{d}"),
            "registry.example.com/redis:7.2.4".into(),
            "quay.io/opstree/redis:v7.0.5-alpine".into(),
            "gcr.io/my-project/redis__x.y-z---w:latest_1".into(),
            "[::1]:5000/redis:7".into(),
            // Not a registry (the '_'), so the whole name is the path: the grammar allows it.
            "a.a_a/0".into(),
            "Registry.Example.COM/redis".into(),
            format!("redis@sha512:{}", "a".repeat(128)),
            format!("redis:{}", "t".repeat(128)),
        ];
        for r in &ok {
            assert!(parse(r).is_ok(), "{r}: {:?}", parse(r));
        }
        assert_eq!(
            parse("localhost:5000/x/y:tag").unwrap(),
            ImageRef { domain: Some("localhost:5000"), path: "x/y", tag: Some("tag"), digest: None }
        );
        assert_eq!(
            parse("redis:7.0").unwrap(),
            ImageRef { domain: None, path: "redis", tag: Some("7.0"), digest: None }
        );
        let full = format!("registry.example.com:443/a/b:tag@{d}");
        let r = parse(&full).unwrap();
        assert_eq!(
            (r.domain, r.path, r.tag, r.digest),
            (Some("registry.example.com:443"), "a/b", Some("tag"), Some(d.as_str()))
        );
    }

    #[test]
    fn hostile_and_malformed_references_are_refused_with_a_reason() {
        let long = format!("redis/{}", "a".repeat(60_000));
        let bad: &[(&str, &str)] = &[
            ("", "empty"),
            ("redis:7.0\"", "character"),
            ("redis:'7.0'", "character"),
            ("redis:$(reboot)", "character"),
            ("redis:`id`", "character"),
            ("redis\u{200b}:7.0", "character"),
            ("redis 7.0", "character"),
            ("redis;rm", "character"),
            ("--privileged", "path component"),
            ("-x/redis", "path component"),
            ("Redis:7.0", "path component"),
            ("library/Redis", "path component"),
            ("redis:", "tag"),
            ("redis:.7", "tag"),
            ("redis:-7", "tag"),
            ("redis:a:b", "tag"),
            ("redis@sha256:abc", "digest"),
            ("redis@md5:0123456789abcdef0123456789abcdef", "digest"),
            ("redis@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", "digest"),
            ("a@b@c", "more than one"),
            ("reg.io:port/redis", "registry"),
            ("-reg.io/redis", "registry"),
            ("a//b", "path component"),
            ("a/", "path component"),
            ("/a", "path component"),
            ("a..b", "path component"),
            ("a___b", "path component"),
            (":7.0", "no repository"),
        ];
        for (r, why) in bad {
            let e = parse(r).expect_err(r);
            assert!(e.contains(why), "{r:?}: {e}");
        }
        assert!(parse(&long).unwrap_err().contains("longer than 255"));
        assert!(parse(&format!("redis:{}", "t".repeat(129))).unwrap_err().contains("tag"));
        let max = format!("r/{}", "a".repeat(NAME_TOTAL_LENGTH_MAX - 2));
        assert!(parse(&max).is_ok());
        assert!(parse(&format!("{max}a")).is_err());
    }

    #[test]
    fn shown_is_short_escaped_and_marks_a_cut() {
        assert_eq!(shown("redis:7.0"), "redis:7.0");
        assert_eq!(shown("a\u{200b}b"), "a\\u{200b}b");
        assert_eq!(shown("a\"b"), "a\\\"b");
        let s = shown(&"x".repeat(60_000));
        assert!(s.ends_with('…') && s.chars().count() <= SHOWN_MAX, "{s}");
        let s = shown(&"\u{200b}".repeat(100));
        assert!(s.ends_with('…') && s.chars().count() <= SHOWN_MAX, "{s}");
    }

    /// References built from the grammar's own pieces.
    fn grammar_ref() -> impl Strategy<Value = String> {
        let component = "[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,2}";
        let path = prop::collection::vec(component, 1..4).prop_map(|v| v.join("/"));
        let host = prop_oneof![
            "[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?(\\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?){0,3}",
            Just("localhost".to_string()),
            Just("[::1]".to_string()),
        ];
        let domain = prop::option::of((host, prop::option::of(0u32..70_000)).prop_map(|(h, p)| match p {
            Some(p) => format!("{h}:{p}"),
            None => h,
        }));
        let tag = prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}");
        let digest = prop::option::of(prop_oneof![
            "[a-f0-9]{64}".prop_map(|h| format!("sha256:{h}")),
            "[a-f0-9]{128}".prop_map(|h| format!("sha512:{h}")),
        ]);
        (domain, path, tag, digest).prop_map(|(d, p, t, g)| {
            let mut s = d.map(|d| format!("{d}/")).unwrap_or_default();
            s.push_str(&p);
            if let Some(t) = t {
                s.push(':');
                s.push_str(&t);
            }
            if let Some(g) = g {
                s.push('@');
                s.push_str(&g);
            }
            s
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn everything_the_grammar_builds_is_accepted(r in grammar_ref()) {
            prop_assert!(parse(&r).is_ok(), "{}: {:?}", r, parse(&r));
        }

        #[test]
        fn nothing_with_a_shell_metacharacter_or_space_passes(
            r in grammar_ref(),
            c in prop_oneof![
                prop::sample::select(vec!['$', '`', '"', '\'', '\\', ';', '|', '&', '<', '>', '(', ')', '{', '}',
                    '*', '?', '!', '#', '~', '=', '%', ' ', '\t', '\n', '\r', '\0', '\u{200b}', '\u{feff}']),
                any::<char>().prop_filter("not allowed", |c| !allowed_char(*c)),
            ],
            at in any::<prop::sample::Index>(),
        ) {
            let mut chars: Vec<char> = r.chars().collect();
            chars.insert(at.index(chars.len() + 1), c);
            let s: String = chars.into_iter().collect();
            prop_assert!(parse(&s).is_err(), "{:?} was accepted", s);
        }

        #[test]
        fn whatever_is_accepted_is_bounded_and_made_of_reference_characters(s in "[a-z0-9./:@_-]{0,300}|\\PC{0,40}") {
            if parse(&s).is_ok() {
                prop_assert!(s.chars().all(allowed_char));
                prop_assert!(!s.starts_with('-') && !s.contains(' '));
                prop_assert!(s.len() <= NAME_TOTAL_LENGTH_MAX + 1 + TAG_MAX + 1 + 7 + 128);
            }
        }
    }
}
