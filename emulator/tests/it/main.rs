//! The emulator's integration tests, one binary so they link once: `cargo test -p mikro-emulator
//! --test it AREA` runs one area (a module path prefix, e.g. `protocol::` or `engine_`).

// Shared helpers.
mod engine_support;

// The T-SQL engine.
mod engine_basic;
mod engine_errors;
mod engine_mikro_schema;
mod engine_tx;
mod sqlserver_parity;
mod tsql_engine;

// The TDS protocol and the binary.
mod protocol;
mod protocol_binary;
mod protocol_types;

// The harness, its PostgreSQL clusters and real client libraries.
mod external_clients;
mod external_harness;
mod pgcluster_cleanup;
