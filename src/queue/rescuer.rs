//! The rescuer: rows whose worker died (or hung) while processing them go back to `pending`.
//!
//! A worker holds each claimed row through a lease (`lease_until`) that it renews until the
//! row's outcome is written (see `worker.rs`). When a worker is killed (kill -9, power loss,
//! network gone) or wedged, its leases run out and the rescuer of any live worker re-queues the
//! rows. The posting may have reached Mikro before the crash; the retry then finds the ledger
//! row and only completes the web side, so a rescue never double-posts.
//!
//! Poison pills: `sync_queue.lease_expiries` counts the rescues charged to a row. The first is
//! charged to every row the dead worker held (nothing tells which one it was posting); once a
//! row has one, the worker marks the start of each posting of it (`posting_started_at`, one
//! extra statement for such rows only), and later rescues are charged only when that mark says
//! it was being posted — so the rows that merely sat in a crashing worker's buffer are not
//! failed with the one that crashes it. The first rescue makes the row due at once (the worker
//! most likely died of something else); later ones back off exponentially
//! (`initial * 2^(n-2)`, at most `max`). The rescue that reaches the limit
//! (`MIKRO_SYNC_MAX_LEASE_EXPIRIES`, default 3) marks the document `failed` with a message saying
//! it crashed or hung the worker, so one document cannot take the daemon down forever; the
//! operator's `status = 'pending'` starts the count again. A document already in Mikro (the
//! crash came after the ERP commit) may end `failed` this way too: its retry completes it from
//! the ledger without posting again.
//!
//! The message says whether the worker is gone (none of its rows has a live lease) or still
//! alive (it renews other rows, so this one hung or could not be renewed).

pub use super::store::{rescue_expired, RescueBackoff, Rescued};
