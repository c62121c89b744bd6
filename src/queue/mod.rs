//! queue (stub, being written).
