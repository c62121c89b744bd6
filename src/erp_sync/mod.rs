//! erp_sync (stub, being written).
