//! posting (stub, being written).
