//! mikro-sync library.
