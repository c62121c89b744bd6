//! mikro-sync: keeps a web shop's PostgreSQL database and a Mikro ERP (SQL Server) in step.
//!
//! Web → ERP: triggers enqueue every sale and collection into `sync_queue` and `pg_notify`; the
//! worker ([`queue`]) wakes, claims and posts each document into Mikro ([`posting`]) exactly once.
//! ERP → Web: master data flows back incrementally ([`erp_sync`]).
//!
//! # Layout
//!
//! Each module depends only on the ones below it in this list (`.ci/module-cycles` checks that
//! no import circle comes back):
//!
//! - [`cli`]: the command line — parses arguments, prints reports, turns signals into the
//!   daemon's shutdown and errors into exit codes. Nothing else imports it.
//! - `demo` (feature `demo`): the whole product on throwaway databases and the emulator.
//! - [`daemon`]: the composition point — pools, worker, interval sync, health, watchdog, HTTP.
//! - [`doctor`], [`setup`], `status`: the operator's checks, installation, and queue report.
//! - [`queue`]: `sync_queue` — claiming, leases, retries, the worker loop; every statement on
//!   the queue tables in `queue::store`.
//! - [`posting`]: one web document → Mikro rows in one ERP transaction, exactly once
//!   (`posting::envelope`).
//! - [`erp_sync`]: Mikro master data → web tables; one file per entity under `entities`.
//! - [`mikro`]: Mikro's tables as the Mikro program writes them (column catalog, VAT table).
//! - [`db`], `pooler`, `erp_net`: connections and pools for both databases, TLS, keepalive.
//! - [`config`]: settings from the environment, `.env` and TOML.
//! - [`http`], [`metrics`], [`telemetry`], [`shutdown`]: metrics/health endpoint, counters,
//!   logging, graceful stop.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod db;
#[cfg(feature = "demo")]
pub mod demo;
pub mod doctor;
pub(crate) mod erp_net;
pub mod erp_sync;
pub mod http;
pub mod metrics;
pub mod mikro;
pub(crate) mod pooler;
pub mod posting;
pub mod queue;
pub mod setup;
pub mod shutdown;
pub(crate) mod status;
pub mod telemetry;
