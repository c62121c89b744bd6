//! mikro-emulator: a TDS (SQL Server wire protocol) server that stores its data in PostgreSQL
//! and speaks the T-SQL subset Mikro integrations use, so mikro-sync's real tiberius code path
//! can be tested over the network without a SQL Server. Also a test harness
//! ([`harness`]) that starts a throwaway PostgreSQL cluster and the emulator in a few seconds.

pub mod browser;
pub mod engine;
pub mod fault_proxy;
pub mod harness;
pub mod pgcluster;
pub mod server;
pub mod tds;
pub mod value;

pub use server::{start, EmulatorConfig, EmulatorError, EmulatorHandle, TlsMode};
