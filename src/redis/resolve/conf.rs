//! `/etc/resolv.conf` as this resolver reads it: nameservers, the search list and `ndots`, and the names a
//! lookup tries in order.

use std::net::IpAddr;

use super::{MAX_NAME_LEN, MAX_NAMESERVERS, MAX_NDOTS, MAX_SEARCH_DOMAINS, is_valid_name, parse_config_ip};

/// What `/etc/resolv.conf` says, as far as this resolver uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    /// At most [`MAX_NAMESERVERS`], in file order.
    pub nameservers: Vec<IpAddr>,
    /// From the last `search` or `domain` line, without trailing dots.
    pub search: Vec<String>,
    pub ndots: usize,
}

impl ResolvConf {
    /// Parses the file leniently: unknown keywords, bad addresses and bad domains are skipped.
    pub fn parse(text: &str) -> Self {
        let mut conf = ResolvConf { nameservers: Vec::new(), search: Vec::new(), ndots: 1 };
        fn domain(word: &str) -> Option<&str> {
            Some(word.strip_suffix('.').unwrap_or(word)).filter(|d| is_valid_name(d))
        }
        for line in text.lines() {
            let line = line.find(['#', ';']).map_or(line, |comment| &line[..comment]);
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(ip) = words.next().and_then(parse_config_ip)
                        && conf.nameservers.len() < MAX_NAMESERVERS
                    {
                        conf.nameservers.push(ip);
                    }
                }
                Some("search") => {
                    conf.search = words.filter_map(domain).map(str::to_owned).take(MAX_SEARCH_DOMAINS).collect();
                }
                Some("domain") => conf.search = words.next().and_then(domain).map(str::to_owned).into_iter().collect(),
                Some("options") => {
                    for n in words.filter_map(|option| option.strip_prefix("ndots:")) {
                        if let Ok(n) = n.parse::<usize>() {
                            conf.ndots = n.min(MAX_NDOTS);
                        }
                    }
                }
                _ => {}
            }
        }
        conf
    }

    /// The names to ask DNS about for `name`, in order.
    pub fn candidates(&self, name: &str) -> Vec<String> {
        if let Some(absolute) = name.strip_suffix('.') {
            return vec![absolute.to_owned()];
        }
        let searched = self.search.iter().map(|domain| format!("{name}.{domain}")).filter(|n| n.len() <= MAX_NAME_LEN);
        let mut names: Vec<String> = if name.matches('.').count() >= self.ndots {
            std::iter::once(name.to_owned()).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(name.to_owned())).collect()
        };
        let mut seen = Vec::new();
        names.retain(|n| {
            let key = n.to_ascii_lowercase();
            let new = !seen.contains(&key);
            seen.push(key);
            new
        });
        names
    }
}
