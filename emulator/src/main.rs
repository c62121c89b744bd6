//! `mikro-emulator` binary. STUB: filled in by the protocol work.
fn main() {}
