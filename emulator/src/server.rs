//! The TCP accept loop and per-connection TDS session driver.
//!
//! STUB: signatures fixed for the harness and the binary; the protocol work fills in the body.

use std::net::SocketAddr;

/// Whether and how the emulator offers TLS in PRELOGIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Never encrypt: PRELOGIN answers ENCRYPT_NOT_SUP (tiberius `EncryptionLevel::NotSupported`).
    Off,
    /// Encrypt when the client asks for it (certificate generated at start), plaintext otherwise.
    #[default]
    Optional,
    /// Refuse clients that do not encrypt.
    Required,
}

/// Everything needed to start one emulated SQL Server.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// PostgreSQL database that stores the emulated database's tables.
    pub pg_url: String,
    /// SQL authentication login accepted by LOGIN7.
    pub user: String,
    pub password: String,
    /// Database name announced in ENVCHANGE and accepted in LOGIN7.
    pub database: String,
    pub tls: TlsMode,
}

/// Errors that stop the emulator from starting.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot reach the backing PostgreSQL database: {0}")]
    Backend(String),
    #[error("TLS setup failed: {0}")]
    Tls(String),
}

/// A running emulator. Dropping it stops accepting; [`EmulatorHandle::shutdown`] also waits for
/// open sessions to end.
#[derive(Debug)]
pub struct EmulatorHandle {
    /// The address actually bound (with the real port when 0 was asked for).
    pub addr: SocketAddr,
}

impl EmulatorHandle {
    /// Stops accepting connections and closes open sessions gracefully.
    pub async fn shutdown(self) {}
}

/// Starts the emulator; returns once it is listening.
pub async fn start(config: EmulatorConfig) -> Result<EmulatorHandle, EmulatorError> {
    let _ = config;
    Err(EmulatorError::Backend("not implemented yet".into()))
}
