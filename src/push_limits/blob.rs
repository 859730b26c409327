//! The push-limit store in Azure Blob Storage (the Function App's `AzureWebJobsStorage`
//! account), or Azurite. PLACEHOLDER: implemented in the storage branch.

use super::store::{Condition, Conflict, Etag, StoreError, Versioned};

/// Blob Storage; see the module docs.
#[derive(Debug)]
pub struct BlobStore {
    _private: (),
}

impl BlobStore {
    pub(super) async fn get(&self, _key: &str) -> Result<Option<Versioned>, StoreError> {
        Err(StoreError("blob store not implemented".into()))
    }

    pub(super) async fn put(
        &self,
        _key: &str,
        _body: Vec<u8>,
        _condition: &Condition,
    ) -> Result<Result<Etag, Conflict>, StoreError> {
        Err(StoreError("blob store not implemented".into()))
    }

    pub(super) async fn delete(&self, _key: &str, _etag: &Etag) -> Result<(), StoreError> {
        Err(StoreError("blob store not implemented".into()))
    }

    pub(super) fn describe(&self) -> String {
        "blob".into()
    }
}
