//! What this charm publishes on the `db` relation (interface `redis`).
//!
//! One set of keys serves both families of client (redis-relation-contract.md): `host` and `hostname`
//! (the address, raw: reactive clients decode JSON with a raw fallback, ops-library clients read it
//! raw), `port` as bare decimal digits (a JSON integer to one family, an `int()`-able string to the
//! other), and `password` JSON-encoded, only when auth is on. The leader also writes `leader-host` into
//! the application bag.

use crate::juju::Settings;

/// The unit-bag settings for a relation.
pub fn unit_data(host: &str, port: u16, password: Option<&str>) -> Settings {
    let mut s = Settings::new();
    s.insert("host".into(), host.to_string());
    s.insert("hostname".into(), host.to_string());
    s.insert("port".into(), port.to_string());
    if let Some(pw) = password {
        s.insert("password".into(), serde_json::Value::String(pw.to_string()).to_string());
    }
    s
}

/// For clients that speak Sentinel: every pod's Sentinel (`host:port`, comma-separated) and the name
/// it monitors the primary under. No requirer of interface `redis` reads these keys, and they collide
/// with none it does (`sentinel-endpoints` is the valkey_client spelling).
pub fn add_sentinels(data: &mut Settings, sentinels: &[String], master: &str) {
    data.insert("sentinel-endpoints".into(), sentinels.join(","));
    data.insert("sentinel-master".into(), master.to_string());
}

/// Every key this charm ever writes in a unit bag.
pub const UNIT_KEYS: &[&str] = &["host", "hostname", "port", "password", "sentinel-endpoints", "sentinel-master"];

/// `data` plus an empty value (which `relation-set` treats as "delete") for each of `keys` it lacks,
/// so a key this charm stopped publishing (the password, once auth is off) is removed, not left stale.
pub fn with_deletions(mut data: Settings, keys: &[&str]) -> Settings {
    for k in keys {
        data.entry((*k).to_string()).or_default();
    }
    data
}

/// The application-bag settings the leader writes: `leader-host`, the primary's address (raw), which
/// ops-library clients prefer over `hostname`.
pub fn app_data(primary_host: &str) -> Settings {
    let mut s = Settings::new();
    s.insert("leader-host".into(), primary_host.to_string());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_families_can_read_it() {
        let d = unit_data("10.152.183.7", 7000, Some("p\"w"));
        // Reactive requirer: json.loads with raw fallback.
        let decode =
            |v: &str| serde_json::from_str::<serde_json::Value>(v).unwrap_or(serde_json::Value::String(v.into()));
        assert_eq!(decode(&d["host"]), serde_json::json!("10.152.183.7"));
        assert_eq!(decode(&d["port"]), serde_json::json!(7000));
        assert_eq!(decode(&d["password"]), serde_json::json!("p\"w"));
        // ops library: raw strings, int(port).
        assert_eq!(d["hostname"], "10.152.183.7");
        assert_eq!(d["port"].parse::<u16>().unwrap(), 7000);
        assert!(!unit_data("h", 1, None).contains_key("password"));
        let mut d = unit_data("h", 1, None);
        add_sentinels(&mut d, &["a-0.a-endpoints:26379".into(), "a-1.a-endpoints:26379".into()], "a");
        assert_eq!(d["sentinel-endpoints"], "a-0.a-endpoints:26379,a-1.a-endpoints:26379");
        let d = with_deletions(unit_data("h", 1, None), UNIT_KEYS);
        assert_eq!(d["password"], "", "auth off: the password key is deleted");
        assert_eq!(d["port"], "1");
    }
}
