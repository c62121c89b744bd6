//! Only one ERP → web sync at a time, across processes: a PostgreSQL session advisory lock.
//!
//! Why an advisory lock in the web database: two daemons (a second worker started by mistake, a
//! manual `mikro-sync sync` while the worker runs) must not interleave pages and watermarks.
//! Both already share the web database; a session lock there needs no extra infrastructure and
//! is freed by PostgreSQL if the holder dies (its connection closes).

use deadpool_postgres::Object;

use super::SyncError;
use crate::db::WebPool;

/// The advisory lock key: ASCII "mikroERP" as an i64, distinct from any other lock of the project.
pub const LOCK_KEY: i64 = 0x6d69_6b72_6f45_5250;

/// A held sync lock. Release it with [`SyncLock::release`]; if it is dropped instead (panic,
/// cancelled task), the connection is taken out of the pool and closed, which frees the lock.
pub struct SyncLock {
    conn: Option<Object>,
}

impl SyncLock {
    /// Tries to take the lock without waiting; `Ok(None)` when another session holds it.
    pub async fn try_acquire(pool: &WebPool) -> Result<Option<SyncLock>, SyncError> {
        let conn = pool
            .get()
            .await
            .map_err(|e| SyncError::WebPool(crate::db::pool_error_text(&e)))?;
        let got: bool = conn
            .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(SyncError::web("taking the sync lock"))?
            .get(0);
        Ok(got.then_some(SyncLock { conn: Some(conn) }))
    }

    /// Releases the lock and returns the connection to the pool.
    pub async fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            match conn
                .query_one("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
                .await
            {
                Ok(_) => drop(conn),
                // Could not unlock: never hand a connection holding the lock back to the pool.
                Err(_) => drop(Object::take(conn)),
            }
        }
    }
}

impl Drop for SyncLock {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(Object::take(conn));
        }
    }
}
