//! Connection pools for the two databases.
//!
//! The web side uses deadpool-postgres (every query except the LISTEN connection, which must own
//! its `Connection` to see notifications); the ERP side uses bb8 + bb8-tiberius, the same code
//! path in production, in the tests (against the emulator) and against a real SQL Server.

use bb8_tiberius::ConnectionManager;

/// The pooled ERP client type every ERP-side function takes.
pub type ErpClient = tiberius::Client<tokio_util::compat::Compat<tokio::net::TcpStream>>;
/// The ERP pool.
pub type ErpPool = bb8::Pool<ConnectionManager>;
/// The web pool.
pub type WebPool = deadpool_postgres::Pool;

/// Errors building a pool: which side and why, so the operator knows which setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("invalid PostgreSQL connection string (check PG_* / DATABASE_URL): {0}")]
    WebConfig(String),
    #[error("invalid SQL Server connection string (check MSSQL_* / the ADO string): {0}")]
    ErpConfig(String),
    #[error("cannot connect to SQL Server: {0}")]
    ErpConnect(String),
}

/// Builds the web pool from a libpq-style URL or key=value string (no TLS; TLS is added by the
/// configuration layer).
pub fn web_pool(url: &str, max_size: usize) -> Result<WebPool, PoolError> {
    let pg: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| PoolError::WebConfig(e.to_string()))?;
    let mgr = deadpool_postgres::Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(mgr)
        .max_size(max_size)
        .build()
        .map_err(|e| PoolError::WebConfig(e.to_string()))
}

/// Builds the ERP pool from an ADO.NET connection string (`server=tcp:host,port;user=…;…`).
pub async fn erp_pool(ado: &str, max_size: u32) -> Result<ErpPool, PoolError> {
    let cfg =
        tiberius::Config::from_ado_string(ado).map_err(|e| PoolError::ErpConfig(e.to_string()))?;
    let mgr = ConnectionManager::new(cfg);
    bb8::Pool::builder()
        .max_size(max_size)
        .build(mgr)
        .await
        .map_err(|e| PoolError::ErpConnect(e.to_string()))
}
