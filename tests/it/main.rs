//! mikro-sync's integration tests in one binary (the chaos suite is `tests/chaos`), so the
//! tests link twice instead of once per file. `cargo test -p mikro-sync --features demo
//! --test it queue_kill::` runs one area (a module path prefix). Tests share the process, so none
//! may change its environment or the library's process-wide settings: `queue_watchdog` re-runs
//! itself as a child, and the chaos suite, which sets a short ERP bound, has its own process.

// Shared helpers.
mod common;
mod posting_support;

// The command line, configuration and packaging.
mod cli_config;
mod cli_doctor;
mod cli_status;
mod cli_worker;
mod config_docs;
mod config_parse;
mod config_tls;
#[cfg(feature = "demo")]
mod demo;
mod systemd;

// The queue and the worker.
mod queue_idle;
mod queue_kill;
mod queue_liveness;
mod queue_ops;
mod queue_prefetch;
mod queue_retry;
mod queue_setup;
mod queue_watchdog;
mod queue_worker;

// Posting into Mikro.
mod posting_bad_input;
mod posting_balance;
mod posting_events;
mod posting_ledger;
mod posting_limits;
mod posting_remedies;
mod posting_series;
mod posting_validation;

// The ERP → web sync and the ERP connection.
mod erp_named_instance;
mod erp_pool;
mod erp_sync_decode;
mod erp_sync_flow;
mod erp_sync_mapping;
mod erp_sync_overlap;

// The whole pipeline (the fault-injection suite is `tests/chaos`).
mod divergence;
mod pipeline_exactly_once;
mod pipeline_kill;
mod pooler_pgbouncer;
