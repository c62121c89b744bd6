//! mikro-sync: keeps a web shop's PostgreSQL database and a Mikro ERP (SQL Server) in step.
//!
//! Web → ERP: triggers enqueue every sale and collection into `sync_queue` and `pg_notify`; the
//! worker ([`queue`]) wakes, claims and posts each document into Mikro ([`posting`]) exactly once.
//! ERP → Web: master data flows back incrementally ([`erp_sync`]).

pub mod cli;
pub mod config;
pub mod daemon;
pub mod db;
#[cfg(feature = "demo")]
pub mod demo;
pub mod doctor;
pub mod erp_net;
pub mod erp_sync;
pub mod http;
pub mod metrics;
pub mod mikro;
pub mod pooler;
pub mod posting;
pub mod queue;
pub mod setup;
pub mod shutdown;
pub mod telemetry;
