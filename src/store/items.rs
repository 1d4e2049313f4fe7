//! Storage of catalog items, the Q-matrix (tree `items`; layout in
//! [`super::keys`]).
//!
//! Items are written in the same transaction as skills and modules
//! ([`Store::put_catalog`]), so a catalog import stays all or nothing.

use sled::Transactional;

use super::mapping::{Mapped, mapping_key};
use super::table::Table;
use super::{Page, Store, codec, page, transaction_error};
use crate::domain::catalog::{Item, Module, Skill};
use crate::domain::xapi::record::ObjectMapping;
use crate::error::Result;

/// Tree of items by id.
const ITEMS: &str = "items";

impl Store {
    fn items_table(&self) -> Result<Table<Item>> {
        self.table(ITEMS)
    }

    /// Every item: the engine caches the whole Q-matrix.
    pub fn all_items(&self) -> Result<Vec<Item>> {
        let mut items: Vec<Item> = self.items_table()?.values(b"")?;
        self.fill_mapping(&mut items)?;
        Ok(items)
    }

    /// One item.
    pub fn item(&self, id: &str) -> Result<Option<Item>> {
        let mut items: Vec<Item> = self
            .items_table()?
            .get(id.as_bytes())?
            .into_iter()
            .collect();
        self.fill_mapping(&mut items)?;
        Ok(items.pop())
    }

    /// A page of items in id order.
    pub fn list_items(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<Item>> {
        let (mut items, next) = page(&self.items_table()?, b"", after, limit)?;
        self.fill_mapping(&mut items)?;
        Ok((items, next))
    }

    /// Writes skills, modules and items, with the mapping rows of the
    /// modules and items, in one transaction: all or nothing.
    pub fn put_catalog(&self, skills: &[Skill], modules: &[Module], items: &[Item]) -> Result<()> {
        let _gate = self.write_gate();
        let item_table = self.items_table()?;
        let mapping_table = self.mapping_table()?;
        let rows: Vec<(Vec<u8>, ObjectMapping)> = modules
            .iter()
            .map(|m| (mapping_key(Module::KIND, &m.id), m.mapping()))
            .chain(
                items
                    .iter()
                    .map(|i| (mapping_key(Item::KIND, &i.id), i.mapping())),
            )
            .collect();
        (
            &self.skills.tree,
            &self.modules.tree,
            &item_table.tree,
            &mapping_table.tree,
        )
            .transaction(|(skill_tree, module_tree, item_tree, mapping_tree)| {
                for skill in skills {
                    skill_tree.insert(skill.id.as_bytes(), codec::encode(skill))?;
                }
                for module in modules {
                    module_tree.insert(module.id.as_bytes(), codec::encode(module))?;
                }
                for item in items {
                    item_tree.insert(item.id.as_bytes(), codec::encode(item))?;
                }
                for (key, row) in &rows {
                    if row.is_empty() {
                        mapping_tree.remove(key.as_slice())?;
                    } else {
                        mapping_tree.insert(key.as_slice(), codec::encode(row))?;
                    }
                }
                Ok(())
            })
            .map_err(transaction_error)
    }
}
