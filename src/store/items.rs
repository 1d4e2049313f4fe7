//! Storage of catalog items, the Q-matrix (tree `items`; layout in
//! [`super::keys`]).
//!
//! Items are written in the same transaction as skills and modules
//! ([`Store::put_catalog`]), so a catalog import stays all or nothing.

use sled::Transactional;

use super::table::Table;
use super::{Page, Store, codec, page, transaction_error};
use crate::domain::catalog::{Item, Module, Skill};
use crate::error::Result;

/// Tree of items by id.
const ITEMS: &str = "items";

impl Store {
    fn items_table(&self) -> Result<Table<Item>> {
        self.table(ITEMS)
    }

    /// Every item: the engine caches the whole Q-matrix.
    pub fn all_items(&self) -> Result<Vec<Item>> {
        Ok(self
            .items_table()?
            .scan(b"")?
            .into_iter()
            .map(|(_, item)| item)
            .collect())
    }

    /// One item.
    pub fn item(&self, id: &str) -> Result<Option<Item>> {
        self.items_table()?.get(id.as_bytes())
    }

    /// A page of items in id order.
    pub fn list_items(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<Item>> {
        page(&self.items_table()?, b"", after, limit)
    }

    /// Writes skills, modules and items in one transaction: all or nothing.
    pub fn put_catalog(&self, skills: &[Skill], modules: &[Module], items: &[Item]) -> Result<()> {
        let _gate = self.write_gate();
        let item_table = self.items_table()?;
        (&self.skills.tree, &self.modules.tree, &item_table.tree)
            .transaction(|(skill_tree, module_tree, item_tree)| {
                for skill in skills {
                    skill_tree.insert(skill.id.as_bytes(), codec::encode(skill))?;
                }
                for module in modules {
                    module_tree.insert(module.id.as_bytes(), codec::encode(module))?;
                }
                for item in items {
                    item_tree.insert(item.id.as_bytes(), codec::encode(item))?;
                }
                Ok(())
            })
            .map_err(transaction_error)
    }
}
