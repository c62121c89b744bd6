//! `mikro-sync demo` (being wired).
