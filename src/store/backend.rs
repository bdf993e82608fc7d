//! The store's storage backend: redb's file backend (or, for an engine in memory, its memory
//! backend) behind a fence that poisoning closes (from then on nothing reaches the file, not
//! even what redb would write as it closes), and in tests behind a [`FaultInjector`].

use std::fs::File;
use std::io;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::backends::{FileBackend, InMemoryBackend};
use redb::{BackendError, StorageBackend};

use super::faults::FaultInjector;

#[derive(Debug)]
pub(crate) struct Backend {
    inner: Box<dyn StorageBackend>,
    faults: Option<FaultInjector>,
    fence: Arc<AtomicBool>,
}

impl Backend {
    pub(crate) fn new(
        file: File,
        faults: Option<FaultInjector>,
        fence: Arc<AtomicBool>,
    ) -> Result<Self, redb::DatabaseError> {
        Ok(Backend {
            inner: Box::new(FileBackend::new(file)?),
            faults,
            fence,
        })
    }

    /// A backend in memory: nothing outlives the engine.
    pub(crate) fn memory(fence: Arc<AtomicBool>) -> Self {
        Backend {
            inner: Box::new(InMemoryBackend::new()),
            faults: None,
            fence,
        }
    }

    fn check_fence(&self) -> io::Result<()> {
        if self.fence.load(Ordering::SeqCst) {
            return Err(io::Error::other(
                "the engine is poisoned: nothing more is written to the file",
            ));
        }
        Ok(())
    }
}

impl StorageBackend for Backend {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        if let Some(faults) = &self.faults {
            faults.before_read()?;
        }
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check_fence()?;
        if let Some(faults) = &self.faults {
            faults.before_set_len()?;
        }
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.check_fence()?;
        if let Some(faults) = &self.faults
            && !faults.before_sync()?
        {
            return Ok(());
        }
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check_fence()?;
        if let Some(faults) = &self.faults {
            faults.before_write(data.len())?;
        }
        self.inner.write(offset, data)
    }

    fn close(&self) -> io::Result<()> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
