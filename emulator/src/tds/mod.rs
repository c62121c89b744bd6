//! MS-TDS protocol: packets, PRELOGIN, LOGIN7, tokens, RPC decoding, TLS-in-PRELOGIN.
//!
//! Why a hand-written codec: no Rust crate implements the *server* side of TDS, and the
//! emulator must answer exactly what tiberius, FreeTDS and python-tds expect. Every module is
//! pure byte work (no I/O) except [`packet`] (message framing over an async stream) and [`tls`]
//! (the TLS handshake carried inside PRELOGIN packets).

pub mod login;
pub mod packet;
pub mod prelogin;
pub mod rpc;
pub mod tls;
pub mod tokens;
pub mod types;

/// A malformed or unsupported client message. The session answers with an ERROR token when it
/// can, or drops the connection when the framing itself is broken.
#[derive(Debug, thiserror::Error)]
pub enum TdsError {
    /// The message ended before a field that must be there.
    #[error("truncated TDS message while reading {0}")]
    Truncated(&'static str),
    /// A field has a value this emulator does not understand.
    #[error("invalid TDS message: {0}")]
    Invalid(String),
    /// The transport failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// A little-endian cursor over a received message. Every read checks bounds, so a broken
/// client produces [`TdsError::Truncated`] instead of a panic.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    /// Current offset from the start of the buffer.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Moves to an absolute offset (used by LOGIN7's offset/length table).
    pub fn seek(&mut self, pos: usize) -> Result<(), TdsError> {
        if pos > self.data.len() {
            return Err(TdsError::Truncated("offset"));
        }
        self.pos = pos;
        Ok(())
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// True when everything has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Takes the next `n` bytes.
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], TdsError> {
        if self.remaining() < n {
            return Err(TdsError::Truncated(what));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Looks at the next byte without consuming it.
    pub fn peek_u8(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    /// Reads one byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, TdsError> {
        Ok(self.bytes(1, what)?[0])
    }

    /// Reads a little-endian u16.
    pub fn u16_le(&mut self, what: &'static str) -> Result<u16, TdsError> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// Reads a big-endian u16 (PRELOGIN offsets).
    pub fn u16_be(&mut self, what: &'static str) -> Result<u16, TdsError> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a little-endian u32.
    pub fn u32_le(&mut self, what: &'static str) -> Result<u32, TdsError> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a little-endian u64.
    pub fn u64_le(&mut self, what: &'static str) -> Result<u64, TdsError> {
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Reads `chars` UTF-16LE code units and decodes them (lossily: a lone surrogate becomes
    /// U+FFFD rather than failing the whole request).
    pub fn utf16(&mut self, chars: usize, what: &'static str) -> Result<String, TdsError> {
        let b = self.bytes(chars * 2, what)?;
        Ok(utf16_to_string(b))
    }

    /// B_VARCHAR: a one-byte character count followed by UTF-16LE.
    pub fn b_varchar(&mut self, what: &'static str) -> Result<String, TdsError> {
        let n = self.u8(what)? as usize;
        self.utf16(n, what)
    }

    /// US_VARCHAR: a two-byte character count followed by UTF-16LE.
    pub fn us_varchar(&mut self, what: &'static str) -> Result<String, TdsError> {
        let n = self.u16_le(what)? as usize;
        self.utf16(n, what)
    }
}

/// Decodes UTF-16LE bytes (an odd trailing byte is ignored).
pub fn utf16_to_string(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() / 2);
    // ASCII first, a byte at a time: a posting's batch text is ~15,000 characters of almost
    // only ASCII, decoded on every call.
    let mut units = b.chunks_exact(2);
    let mut rest = 0;
    for (i, c) in units.by_ref().enumerate() {
        if c[1] == 0 && c[0] < 0x80 {
            s.push(char::from(c[0]));
        } else {
            rest = i * 2;
            break;
        }
        rest = (i + 1) * 2;
    }
    let tail = b[rest..]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]));
    s.extend(char::decode_utf16(tail).map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER)));
    s
}

/// Appends `s` as UTF-16LE.
pub fn put_utf16(dst: &mut Vec<u8>, s: &str) {
    for u in s.encode_utf16() {
        dst.extend_from_slice(&u.to_le_bytes());
    }
}

/// Appends a B_VARCHAR (character count capped at 255).
pub fn put_b_varchar(dst: &mut Vec<u8>, s: &str) {
    let units: Vec<u16> = s.encode_utf16().take(255).collect();
    dst.push(units.len() as u8);
    for u in units {
        dst.extend_from_slice(&u.to_le_bytes());
    }
}

/// Appends a US_VARCHAR (character count capped at 65535).
pub fn put_us_varchar(dst: &mut Vec<u8>, s: &str) {
    let units: Vec<u16> = s.encode_utf16().take(65535).collect();
    dst.extend_from_slice(&(units.len() as u16).to_le_bytes());
    for u in units {
        dst.extend_from_slice(&u.to_le_bytes());
    }
}

/// Reads the ALL_HEADERS block that starts SQLBatch, RPC and Transaction Manager requests
/// (TDS 7.2+) and returns the transaction descriptor it carries (0 when absent).
///
/// Tolerant: a message without ALL_HEADERS (a pre-7.2 habit some clients keep) is detected by
/// an implausible total length and left untouched.
pub fn read_all_headers(r: &mut Reader<'_>) -> Result<u64, TdsError> {
    let start = r.pos();
    if r.remaining() < 4 {
        return Ok(0);
    }
    let mut probe = r.clone();
    let total = probe.u32_le("ALL_HEADERS length")? as usize;
    if total < 4 || total > r.remaining() {
        return Ok(0);
    }
    let mut desc = 0u64;
    let mut h = Reader::new(r.bytes(total, "ALL_HEADERS")?);
    h.u32_le("ALL_HEADERS length")?;
    while h.remaining() >= 6 {
        let len = h.u32_le("header length")? as usize;
        if len < 6 {
            return Err(TdsError::Invalid(format!("header length {len} too small")));
        }
        let ty = h.u16_le("header type")?;
        let body = h.bytes(len - 6, "header data")?;
        if ty == 2 && body.len() >= 8 {
            let mut a = [0u8; 8];
            a.copy_from_slice(&body[..8]);
            desc = u64::from_le_bytes(a);
        }
    }
    debug_assert!(r.pos() == start + total);
    Ok(desc)
}

#[cfg(test)]
mod fuzz {
    //! Decoders must turn any byte sequence into a value or an error, never a panic: a broken
    //! client must not take a connection task (let alone the server) down.

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn decoders_never_panic_on_random_input() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        // A valid RPC prefix (ALL_HEADERS + sp_executesql) followed by random parameter bytes
        // exercises the TYPE_INFO/value decoders rather than failing at the first field.
        let mut rpc_prefix = vec![22, 0, 0, 0, 18, 0, 0, 0, 2, 0];
        rpc_prefix.extend_from_slice(&[0; 8]);
        rpc_prefix.extend_from_slice(&[1, 0, 0, 0, 0xFF, 0xFF, 10, 0, 0, 0]);
        let iters: usize = std::env::var("TDS_FUZZ_ITERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50_000);
        for i in 0..iters {
            let len = (rng.next() % if i % 3 == 0 { 600 } else { 96 }) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if i % 2 == 0 {
                // Bias type bytes towards real TDS types.
                const TYPES: [u8; 24] = [
                    0x1F, 0x26, 0x68, 0x6D, 0x6E, 0x6F, 0x24, 0x6A, 0x6C, 0x28, 0x29, 0x2A, 0x2B,
                    0xE7, 0xEF, 0xA7, 0xAF, 0xA5, 0xAD, 0x63, 0x23, 0x22, 0x38, 0x3D,
                ];
                let mut p = rpc_prefix.clone();
                p.extend_from_slice(&[0, 0]); // empty name, status
                p.push(TYPES[(rng.next() % TYPES.len() as u64) as usize]);
                p.extend_from_slice(&data);
                data = p;
            }
            let _ = super::rpc::parse(&data);
            let _ = super::login::parse(&data);
            let _ = super::prelogin::parse(&data);
            let mut r = super::Reader::new(&data);
            let _ = super::read_all_headers(&mut r);
            let mut r = super::Reader::new(&data);
            if let Ok(w) = super::types::read_type_info(&mut r) {
                let _ = super::types::read_value(&mut r, &w);
            }
        }
    }
}
