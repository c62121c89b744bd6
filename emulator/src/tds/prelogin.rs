//! PRELOGIN: the first message of every connection. The client announces its version and
//! whether it wants encryption; the server answers with its version, its encryption decision,
//! INSTOPT, an empty THREADID and MARS off.
//!
//! Why the encryption table matters: it decides whether a TLS handshake follows and whether
//! TLS stays on after LOGIN7 (tiberius `encrypt=false` still encrypts the login; only
//! ENCRYPT_NOT_SUP keeps everything in plaintext).

use super::{Reader, TdsError};

/// PRELOGIN ENCRYPTION values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// ENCRYPT_OFF: encrypt the login only.
    Off,
    /// ENCRYPT_ON: encrypt everything.
    On,
    /// ENCRYPT_NOT_SUP: no TLS at all.
    NotSup,
    /// ENCRYPT_REQ: the server (or client) requires encryption.
    Req,
}

impl Encryption {
    /// Decodes the option byte (unknown bits such as ENCRYPT_CLIENT_CERT are masked out).
    pub fn from_u8(b: u8) -> Self {
        match b & 0x0F {
            0 => Encryption::Off,
            1 => Encryption::On,
            3 => Encryption::Req,
            _ => Encryption::NotSup,
        }
    }

    /// The option byte.
    pub fn as_u8(self) -> u8 {
        match self {
            Encryption::Off => 0,
            Encryption::On => 1,
            Encryption::NotSup => 2,
            Encryption::Req => 3,
        }
    }
}

/// What the client sent in PRELOGIN (only the fields the server acts on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPrelogin {
    /// Requested encryption; `NotSup` when the option is missing.
    pub encryption: Encryption,
    /// Whether the client asked for MARS (always answered with 0).
    pub mars: bool,
}

/// Parses a client PRELOGIN message.
pub fn parse(data: &[u8]) -> Result<ClientPrelogin, TdsError> {
    let mut r = Reader::new(data);
    let mut out = ClientPrelogin {
        encryption: Encryption::NotSup,
        mars: false,
    };
    loop {
        let token = r.u8("PRELOGIN option token")?;
        if token == 0xFF {
            break;
        }
        let offset = r.u16_be("PRELOGIN option offset")? as usize;
        let len = r.u16_be("PRELOGIN option length")? as usize;
        if offset + len > data.len() {
            return Err(TdsError::Truncated("PRELOGIN option data"));
        }
        let value = &data[offset..offset + len];
        match token {
            1 if !value.is_empty() => out.encryption = Encryption::from_u8(value[0]),
            4 if !value.is_empty() => out.mars = value[0] != 0,
            _ => {}
        }
    }
    Ok(out)
}

/// Builds the server's PRELOGIN answer. `version` is the announced SQL Server version
/// (major, minor, build).
pub fn build_response(encryption: Encryption, version: (u8, u8, u16)) -> Vec<u8> {
    // (token, data)
    let options: [(u8, Vec<u8>); 5] = [
        (0, {
            let mut v = vec![version.0, version.1];
            v.extend_from_slice(&version.2.to_be_bytes());
            v.extend_from_slice(&[0, 0]); // sub-build
            v
        }),
        (1, vec![encryption.as_u8()]),
        (2, vec![0]), // INSTOPT: default instance, accepted
        (3, vec![]),  // THREADID: empty from the server
        (4, vec![0]), // MARS off
    ];
    let mut out = Vec::new();
    let mut offset = (options.len() * 5 + 1) as u16;
    for (token, value) in &options {
        out.push(*token);
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        offset += value.len() as u16;
    }
    out.push(0xFF);
    for (_, value) in &options {
        out.extend_from_slice(value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_its_own_layout() {
        let resp = build_response(Encryption::On, (16, 0, 4105));
        let parsed = parse(&resp).unwrap();
        assert_eq!(parsed.encryption, Encryption::On);
        assert!(!parsed.mars);
    }
}
