//! A typed view of one sled tree: keys are bytes, values one domain type.
//!
//! Every read goes through [`super::codec::decode`], so a corrupt value is an
//! error wherever it is met, and every listing pages by key the same way.

use std::marker::PhantomData;

use serde::{Serialize, de::DeserializeOwned};

use super::codec;
use crate::error::Result;

/// Rows of a table: each key with its decoded value.
pub type Rows<T> = Vec<(Vec<u8>, T)>;

/// A sled tree holding values of type `T`.
pub struct Table<T> {
    /// Tree name, for error messages.
    pub name: &'static str,
    /// The underlying tree.
    pub tree: sled::Tree,
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for Table<T> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            tree: self.tree.clone(),
            _value: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Table<T> {
    /// Opens (or creates) the tree `name` of `db`.
    pub fn open(db: &sled::Db, name: &'static str) -> Result<Self> {
        Ok(Self {
            name,
            tree: db.open_tree(name)?,
            _value: PhantomData,
        })
    }

    /// The value under `key`, if any.
    pub fn get(&self, key: &[u8]) -> Result<Option<T>> {
        match self.tree.get(key)? {
            Some(bytes) => codec::decode(self.name, key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Whether `key` holds a value.
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.tree.contains_key(key)?)
    }

    /// Stores `value` under `key` (outside any transaction).
    pub fn put(&self, key: &[u8], value: &T) -> Result<()> {
        self.tree.insert(key, codec::encode(value))?;
        Ok(())
    }

    /// Every value whose key starts with `prefix`, in key order.
    pub fn scan(&self, prefix: &[u8]) -> Result<Rows<T>> {
        self.tree
            .scan_prefix(prefix)
            .map(|entry| {
                let (key, bytes) = entry?;
                let value = codec::decode(self.name, &key, &bytes)?;
                Ok((key.to_vec(), value))
            })
            .collect()
    }

    /// The decoded values under `prefix`, in key order.
    pub fn values(&self, prefix: &[u8]) -> Result<Vec<T>> {
        self.tree
            .scan_prefix(prefix)
            .map(|entry| {
                let (key, bytes) = entry?;
                codec::decode(self.name, &key, &bytes)
            })
            .collect()
    }

    /// One page of the keys starting with `prefix` and strictly after
    /// `after` (a full key), at most `limit` long. Returns the page and
    /// whether more entries follow.
    pub fn page(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Rows<T>, bool)> {
        self.page_where(prefix, after, limit, |_| true)
    }

    /// [`Table::page`] of only the values `keep` takes: the scan reads past
    /// the others, so a page is bounded by `limit` results, not by the
    /// entries read; "more follow" means more that `keep` takes.
    pub fn page_where(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
        keep: impl Fn(&T) -> bool,
    ) -> Result<(Rows<T>, bool)> {
        let start = match after {
            Some(after) if after >= prefix => {
                let mut start = after.to_vec();
                start.push(0);
                start
            }
            _ => prefix.to_vec(),
        };
        let mut page = Vec::with_capacity(limit.min(1024));
        let mut more = false;
        for entry in self.tree.range(start..) {
            let (key, bytes) = entry?;
            if !key.starts_with(prefix) {
                break;
            }
            let value = codec::decode(self.name, &key, &bytes)?;
            if !keep(&value) {
                continue;
            }
            if page.len() == limit {
                more = true;
                break;
            }
            page.push((key.to_vec(), value));
        }
        Ok((page, more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A filtered page reads past what `keep` refuses, says "more" only
    /// when a kept value follows, and goes on after its last key.
    #[test]
    fn a_filtered_page_counts_only_what_it_keeps() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let table: Table<u32> = Table::open(&db, "numbers").unwrap();
        for n in 0..10u32 {
            table.put(format!("k{n}").as_bytes(), &n).unwrap();
        }
        let even = |n: &u32| n % 2 == 0;
        let values = |rows: &Rows<u32>| rows.iter().map(|(_, v)| *v).collect::<Vec<_>>();
        let (first, more) = table.page_where(b"k", None, 2, even).unwrap();
        assert_eq!((values(&first), more), (vec![0, 2], true));
        let after = first.last().map(|(k, _)| k.as_slice());
        let (rest, more) = table.page_where(b"k", after, 3, even).unwrap();
        assert_eq!((values(&rest), more), (vec![4, 6, 8], false));
        let (all, more) = table.page(b"k", None, 10).unwrap();
        assert_eq!((all.len(), more), (10, false));
    }
}
