//! Storage of API keys (tree `api_keys`) and of the marker that the first
//! admin key was handed out (key `admin_key_bootstrapped` of `meta`).
//!
//! A key record holds a hash of its secret, never the secret. Keys are few
//! and read whole at start into the engine's cache; every write goes through
//! the engine, which updates the cache with it.

use sled::Transactional;

use super::table::Table;
use super::{Store, codec, keys, transaction_error};
use crate::domain::access::ApiKey;
use crate::domain::learner::Micros;
use crate::error::Result;

impl Store {
    fn api_keys_table(&self) -> Result<Table<ApiKey>> {
        self.table(keys::API_KEYS)
    }

    fn meta_table(&self) -> Result<Table<Micros>> {
        self.table("meta")
    }

    /// Every key, revoked ones included, in key id order.
    pub fn api_keys(&self) -> Result<Vec<ApiKey>> {
        self.api_keys_table()?.values(b"")
    }

    /// One key by id.
    pub fn api_key(&self, id: &str) -> Result<Option<ApiKey>> {
        self.api_keys_table()?.get(id.as_bytes())
    }

    /// Creates or replaces a key (creation, revocation). Call
    /// [`Store::durable`] before replying.
    pub fn put_api_key(&self, key: &ApiKey) -> Result<()> {
        let _gate = self.write_gate();
        self.api_keys_table()?.put(key.id.as_bytes(), key)
    }

    /// Whether the first admin key was ever written (even if the key or its
    /// file were later removed).
    pub fn admin_key_bootstrapped(&self) -> Result<bool> {
        self.meta_table()?.contains(keys::ADMIN_KEY_BOOTSTRAPPED)
    }

    /// Stores the first admin key and the marker together, then flushes:
    /// the marker alone must never exist without the key, nor the key
    /// without the marker.
    pub fn put_first_admin_key(&self, key: &ApiKey, now: Micros) -> Result<()> {
        let _gate = self.write_gate();
        let keys_tree = self.api_keys_table()?.tree;
        let meta_tree = self.meta_table()?.tree;
        let value = codec::encode(key);
        let marker = codec::encode(&now);
        (&keys_tree, &meta_tree)
            .transaction(|(k, m)| {
                k.insert(key.id.as_bytes(), value.as_slice())?;
                m.insert(keys::ADMIN_KEY_BOOTSTRAPPED, marker.as_slice())?;
                Ok(())
            })
            .map_err(transaction_error)?;
        self.db.flush()?;
        Ok(())
    }
}
