//! Where push-limit state lives: a small key → JSON document store with optimistic
//! concurrency, the shape of Azure Blob Storage's conditional requests (`ETag`, `If-Match`,
//! `If-None-Match: *`).
//!
//! Two stores, one enum ([`PushStore`]), no trait objects:
//! - [`MemoryStore`]: one process only — the demo, a bare `handler` and unit tests;
//! - [`super::blob::BlobStore`]: the Function App's storage account (`AzureWebJobsStorage`),
//!   shared by every instance the host scales out to.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// An entity tag: the version of one stored document, opaque. A write conditioned on it
/// succeeds only while nobody else has written the document since it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Etag(pub String);

/// One document as read: its body (JSON, a few hundred bytes) and its version.
#[derive(Clone, Debug)]
pub struct Versioned {
    /// The document's bytes.
    pub body: Vec<u8>,
    /// Its version, for the next conditional write.
    pub etag: Etag,
}

/// The precondition of a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The document must not exist (`If-None-Match: *`).
    Absent,
    /// The document must still be at this version (`If-Match`).
    Matches(Etag),
}

/// A conditional write lost the race: the document was created or changed since it was
/// read (HTTP 409 `BlobAlreadyExists` / 412 `ConditionNotMet` in Blob Storage). Not an
/// error of the store: read again and decide again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conflict;

/// The store could not answer: unreachable, refused our credentials, answered 5xx, or the
/// answer made no sense. The message is for logs (never for `userMessage`) and must not
/// carry keys, SAS tokens or connection strings.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("push-limit store: {0}")]
pub struct StoreError(pub String);

/// Which store to use, from the settings ([`crate::config`]). `Debug` shows no secret.
#[derive(Clone, Debug)]
pub enum StoreSettings {
    /// No storage setting: [`MemoryStore`], limits per process.
    Memory,
    /// `AzureWebJobsStorage` (a connection string) or its identity-based form.
    Blob(super::blob::BlobSettings),
}

/// The push-limit store in use; see the module docs.
#[derive(Debug)]
pub enum PushStore {
    /// One process only.
    Memory(MemoryStore),
    /// Azure Blob Storage (or Azurite).
    Blob(super::blob::BlobStore),
    /// Unit tests: a [`MemoryStore`] with one [`Fault`].
    #[cfg(test)]
    Faulty(MemoryStore, Fault),
}

/// How a unit test's store misbehaves; reads always work as in [`MemoryStore`].
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Every write loses the race, as under a burst of parallel calls.
    ConflictingWrites,
    /// Deletes fail.
    FailingDeletes,
    /// Writes and deletes never answer, as a store slowed down by a burst.
    HangingWrites,
}

impl PushStore {
    /// The store `settings` select; for Blob Storage, a client whose requests end within
    /// `timeout` (the store budget), with the container created if absent.
    ///
    /// # Errors
    /// The storage account cannot be reached or refuses the credentials; the message names
    /// the endpoint, never a secret.
    pub async fn connect(settings: &StoreSettings, timeout: Duration) -> Result<Self, StoreError> {
        match settings {
            StoreSettings::Memory => Ok(Self::Memory(MemoryStore::default())),
            StoreSettings::Blob(blob) => Ok(Self::Blob(
                super::blob::BlobStore::connect(blob, timeout).await?,
            )),
        }
    }

    /// Reads one document; `None` when it does not exist.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        match self {
            Self::Memory(store) => Ok(store.get(key)),
            Self::Blob(store) => store.get(key).await,
            #[cfg(test)]
            Self::Faulty(store, _) => Ok(store.get(key)),
        }
    }

    /// Writes one document if `condition` holds; `Ok(Err(Conflict))` when it does not.
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: Condition,
    ) -> Result<Result<Etag, Conflict>, StoreError> {
        match self {
            Self::Memory(store) => Ok(store.put(key, body, &condition)),
            Self::Blob(store) => store.put(key, body, &condition).await,
            #[cfg(test)]
            Self::Faulty(store, fault) => match fault {
                Fault::ConflictingWrites => Ok(Err(Conflict)),
                Fault::FailingDeletes => Ok(store.put(key, body, &condition)),
                Fault::HangingWrites => std::future::pending().await,
            },
        }
    }

    /// Deletes one document if it is still at `etag`; a document already gone or changed
    /// since is left alone (`Ok`).
    ///
    /// # Errors
    /// [`StoreError`].
    pub async fn delete(&self, key: &str, etag: &Etag) -> Result<(), StoreError> {
        match self {
            Self::Memory(store) => {
                store.delete(key, etag);
                Ok(())
            }
            Self::Blob(store) => store.delete(key, etag).await,
            #[cfg(test)]
            Self::Faulty(_, Fault::ConflictingWrites) => Ok(()),
            #[cfg(test)]
            Self::Faulty(_, Fault::FailingDeletes) => {
                Err(StoreError("delete failed (test)".into()))
            }
            #[cfg(test)]
            Self::Faulty(_, Fault::HangingWrites) => std::future::pending().await,
        }
    }

    /// What the startup log line says about the store: kind and account/endpoint, never a
    /// key or token.
    pub fn describe(&self) -> String {
        match self {
            Self::Memory(_) => "in-memory (this process only)".into(),
            Self::Blob(store) => store.describe(),
            #[cfg(test)]
            Self::Faulty(_, fault) => format!("in-memory with {fault:?} (unit tests)"),
        }
    }
}

/// The documents of one process, behind one lock; versions are a counter. For the demo, a
/// bare `handler` without storage settings, and unit tests: limits then hold per process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    next_version: u64,
    documents: HashMap<String, (Vec<u8>, Etag)>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // A panic while holding the lock cannot leave a document half-written (every
        // update is one insert), so a poisoned lock is still consistent.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, key: &str) -> Option<Versioned> {
        self.lock()
            .documents
            .get(key)
            .map(|(body, etag)| Versioned {
                body: body.clone(),
                etag: etag.clone(),
            })
    }

    fn put(&self, key: &str, body: Vec<u8>, condition: &Condition) -> Result<Etag, Conflict> {
        let mut inner = self.lock();
        let current = inner.documents.get(key).map(|(_, etag)| etag);
        let holds = match condition {
            Condition::Absent => current.is_none(),
            Condition::Matches(expected) => current == Some(expected),
        };
        if !holds {
            return Err(Conflict);
        }
        inner.next_version += 1;
        let etag = Etag(format!("\"{}\"", inner.next_version));
        inner.documents.insert(key.to_owned(), (body, etag.clone()));
        Ok(etag)
    }

    fn delete(&self, key: &str, etag: &Etag) {
        let mut inner = self.lock();
        if inner.documents.get(key).map(|(_, e)| e) == Some(etag) {
            inner.documents.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_honours_conditions() {
        let store = MemoryStore::default();
        let first = store.put("k", b"1".to_vec(), &Condition::Absent).unwrap();
        assert_eq!(
            store.put("k", b"2".to_vec(), &Condition::Absent),
            Err(Conflict)
        );
        let second = store
            .put("k", b"2".to_vec(), &Condition::Matches(first.clone()))
            .unwrap();
        assert_eq!(
            store.put("k", b"3".to_vec(), &Condition::Matches(first.clone())),
            Err(Conflict)
        );
        store.delete("k", &first);
        assert_eq!(store.get("k").unwrap().body, b"2");
        store.delete("k", &second);
        assert!(store.get("k").is_none());
    }
}
