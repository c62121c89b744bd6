//! Claiming due rows (the producer side of the worker).
//!
//! One statement claims a batch: the due `pending` rows are locked with `FOR UPDATE SKIP LOCKED`
//! (so several workers, in one process or many, never claim the same row and never wait on
//! each other) and turned into `processing` with the worker's name and a lease. The attempt is
//! counted here (`retry_count` counts attempts) and the retry window starts on the first one.
//!
//! The same statement moves the rows the web triggers wrote into `sync_queue_inbox` (the
//! index-less child table of `sync_queue`, see `sql/web/003_sync_queue.sql`) into `sync_queue`
//! itself, where the one-open-row index applies. The web app's transaction then pays for a heap
//! insert only; the indexes are paid here, off its write path.
//!
//! The statements live in [`store`](super::store); this module is the claim side's entry point.

pub use super::store::{claim, extend_leases, next_due, release};
