//! Test harness: a throwaway PostgreSQL cluster with `web` and `erp` databases, the emulator on an
//! ephemeral port with the Mikro schema and seed data loaded, and ready connection settings.
