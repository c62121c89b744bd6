//! MS-TDS protocol: packets, PRELOGIN, LOGIN7, tokens, RPC decoding, TLS-in-PRELOGIN.
