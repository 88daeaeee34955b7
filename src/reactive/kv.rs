//! The unit's key-value store, persisted with the flags (charmhelpers' `unitdata.kv()` in the original).
//!
//! Holds what handlers and layers must remember between hooks: `data_changed` hashes, the config snapshot,
//! resource details. Like the flags, it is committed only when the hook succeeds.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Key-value data of one unit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kv {
    map: BTreeMap<String, Value>,
}

impl Kv {
    pub fn new(map: BTreeMap<String, Value>) -> Self {
        Kv { map }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key)
    }

    /// Reads `key` as `T`; `None` when missing or of another shape.
    pub fn get_as<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.map.get(key).and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    pub fn set(&mut self, key: &str, value: Value) {
        self.map.insert(key.to_string(), value);
    }

    /// Stores any serializable value (a value that cannot be represented as JSON is stored as null).
    pub fn set_as<T: Serialize>(&mut self, key: &str, value: &T) {
        self.set(key, serde_json::to_value(value).unwrap_or(Value::Null));
    }

    pub fn unset(&mut self, key: &str) {
        self.map.remove(key);
    }

    /// Whether `data` differs from the last value recorded under `id`; records it (charms.reactive
    /// `data_changed`, reference §1.4). The first call for an id returns true. Only a hash is stored.
    pub fn data_changed<T: Serialize + ?Sized>(&mut self, id: &str, data: &T) -> bool {
        let key = data_changed_key(id);
        let new = Value::String(hash_json(data));
        let changed = self.map.get(&key) != Some(&new);
        self.map.insert(key, new);
        changed
    }

    /// Like [`Kv::data_changed`] without recording.
    pub fn is_data_changed<T: Serialize + ?Sized>(&self, id: &str, data: &T) -> bool {
        self.map.get(&data_changed_key(id)) != Some(&Value::String(hash_json(data)))
    }

    pub fn as_map(&self) -> &BTreeMap<String, Value> {
        &self.map
    }

    pub fn into_map(self) -> BTreeMap<String, Value> {
        self.map
    }
}

/// Where [`Kv::data_changed`] keeps the hash of `id`: `reactive.data_changed.<id>` (charms.reactive's key).
pub fn data_changed_key(id: &str) -> String {
    format!("{DATA_CHANGED_PREFIX}{id}")
}

/// The prefix of every [`data_changed_key`].
pub const DATA_CHANGED_PREFIX: &str = "reactive.data_changed.";

/// A stable hash of `data`'s canonical JSON (object keys sorted): FNV-1a 64-bit, hex. Stable across Rust
/// versions and platforms (it is persisted), and only used to notice change, never for security.
pub fn hash_json<T: Serialize + ?Sized>(data: &T) -> String {
    // serde_json's Map is a BTreeMap (no preserve_order feature), so keys come out sorted.
    let text = serde_json::to_value(data).map(|v| v.to_string()).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_changed_records_and_compares() {
        let mut kv = Kv::default();
        assert!(kv.data_changed("spec", "a"));
        assert!(!kv.data_changed("spec", "a"));
        assert!(kv.is_data_changed("spec", "b"));
        assert!(!kv.data_changed("spec", "a"), "is_data_changed must not record");
        assert!(kv.data_changed("spec", "b"));
        assert!(kv.as_map().contains_key("reactive.data_changed.spec"));
        assert_eq!(data_changed_key("spec"), "reactive.data_changed.spec");
    }

    #[test]
    fn hash_ignores_key_order_and_is_stable() {
        assert_eq!(hash_json(&json!({"a": 1, "b": 2})), hash_json(&json!({"b": 2, "a": 1})));
        // Pinned: a persisted hash must not change between builds.
        assert_eq!(hash_json("x"), "d47c1617d80fa71f");
    }
}
