//! [`Transaction`]: changes buffered in memory and committed as one record.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::error::{ReadError, WriteError};
use super::format::MAX_KEY_LEN;
use super::secret::SecretBytes;
use super::store::Vault;

/// A set of changes committed as one record: all of them or none survive a crash.
/// Dropping it without [`Transaction::commit`] discards the changes.
pub struct Transaction<'v> {
    vault: &'v mut Vault,
    changes: BTreeMap<SecretBytes, Option<Zeroizing<Vec<u8>>>>,
}

impl core::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Transaction")
            .field("changes", &self.changes.len())
            .finish_non_exhaustive()
    }
}

impl<'v> Transaction<'v> {
    pub(crate) fn new(vault: &'v mut Vault) -> Self {
        Self {
            vault,
            changes: BTreeMap::new(),
        }
    }

    /// Sets `key` to `value` when the transaction commits.
    pub fn put(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), WriteError> {
        let key = checked_key(key.as_ref())?;
        self.changes
            .insert(key, Some(Zeroizing::new(value.as_ref().to_vec())));
        Ok(())
    }

    /// Removes `key` when the transaction commits.
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> Result<(), WriteError> {
        let key = checked_key(key.as_ref())?;
        self.changes.insert(key, None);
        Ok(())
    }

    /// The value `key` will have if the transaction commits.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Zeroizing<Vec<u8>>>, ReadError> {
        let key = key.as_ref();
        match self.changes.get(&SecretBytes::new(key)) {
            Some(change) => Ok(change.clone()),
            None => self.vault.get(key),
        }
    }

    /// Writes the changes as one record and syncs: durable when this returns `Ok`.
    pub fn commit(self) -> Result<(), WriteError> {
        self.vault.commit_changes(&self.changes)
    }
}

fn checked_key(key: &[u8]) -> Result<SecretBytes, WriteError> {
    if key.len() > MAX_KEY_LEN {
        return Err(WriteError::KeyTooLong {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(SecretBytes::new(key))
}
