//! What SQL Server says about itself before TLS, and the setting a failed connection needs.

use std::time::Duration;

use crate::config::{ErpDbConfig, ErpEncrypt};

/// What SQL Server says about itself in its PRELOGIN answer, before any TLS: its version and
/// whether it encrypts. Doctor reads it to name the exact setting when a connection fails and to
/// tell whether the password really travels in clear text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerPrelogin {
    /// Major, minor, build (16.0.x is SQL Server 2022, 10.50.x is 2008 R2).
    pub version: (u8, u8, u16),
    /// The server's answer to a client that offers login-only encryption.
    pub encryption: ServerEncryption,
}

/// The ENCRYPTION byte of a server's PRELOGIN answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerEncryption {
    /// ENCRYPT_NOT_SUP: no TLS at all, the login (and password) goes in clear text.
    NotSupported,
    /// ENCRYPT_OFF: TLS for the login only.
    LoginOnly,
    /// ENCRYPT_ON / ENCRYPT_REQ: the server forces encryption of the whole session.
    Forced,
}

impl ServerPrelogin {
    /// "SQL Server 2014 (12.0.6024)", or the bare version for one this table does not know.
    pub fn product(&self) -> String {
        let (major, minor, build) = self.version;
        let name = match (major, minor) {
            (10, 50) => "2008 R2",
            (10, _) => "2008",
            (11, _) => "2012",
            (12, _) => "2014",
            (13, _) => "2016",
            (14, _) => "2017",
            (15, _) => "2019",
            (16, _) => "2022",
            (17, _) => "2025",
            _ => "",
        };
        if name.is_empty() {
            format!("SQL Server {major}.{minor}.{build}")
        } else {
            format!("SQL Server {name} ({major}.{minor}.{build})")
        }
    }
}

/// Sends one PRELOGIN (offering login-only encryption, as SSMS does by default) and reads the
/// answer's VERSION and ENCRYPTION options; no TLS, no login. Bounded by `timeout`.
pub async fn prelogin_probe(addr: &str, timeout: Duration) -> Result<ServerPrelogin, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const VERSION: u8 = 0;
    const ENCRYPTION: u8 = 1;
    let exchange = async {
        let mut tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("TCP connect to {addr}: {e}"))?;
        // Options VERSION (6 bytes) and ENCRYPTION (1 byte), then the terminator; offsets count
        // from the start of the payload (2 × 5 option bytes + 1 terminator = 11).
        let payload: [u8; 18] = [
            VERSION, 0, 11, 0, 6, ENCRYPTION, 0, 17, 0, 1, 0xFF, 0, 0, 0, 0, 0, 0, 0x00,
        ];
        let len = (8 + payload.len()) as u16;
        let mut pkt = vec![0x12, 0x01, (len >> 8) as u8, len as u8, 0, 0, 1, 0];
        pkt.extend_from_slice(&payload);
        tcp.write_all(&pkt)
            .await
            .map_err(|e| format!("PRELOGIN to {addr}: {e}"))?;
        let mut head = [0u8; 8];
        tcp.read_exact(&mut head)
            .await
            .map_err(|e| format!("PRELOGIN answer from {addr}: {e}"))?;
        let total = u16::from_be_bytes([head[2], head[3]]) as usize;
        if head[0] != 0x04 || total < 8 {
            return Err(format!(
                "{addr} did not answer PRELOGIN as SQL Server does (packet type 0x{:02X})",
                head[0]
            ));
        }
        let mut body = vec![0u8; total - 8];
        tcp.read_exact(&mut body)
            .await
            .map_err(|e| format!("PRELOGIN answer from {addr}: {e}"))?;
        parse_prelogin_answer(&body).ok_or_else(|| format!("{addr}: unreadable PRELOGIN answer"))
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        format!(
            "no PRELOGIN answer from {addr} within {} s",
            timeout.as_secs()
        )
    })?
}

pub(super) fn parse_prelogin_answer(body: &[u8]) -> Option<ServerPrelogin> {
    let (mut version, mut encryption) = (None, None);
    let mut i = 0;
    while *body.get(i)? != 0xFF {
        let token = body[i];
        let off = u16::from_be_bytes([*body.get(i + 1)?, *body.get(i + 2)?]) as usize;
        let len = u16::from_be_bytes([*body.get(i + 3)?, *body.get(i + 4)?]) as usize;
        let data = body.get(off..off + len)?;
        match (token, len) {
            (0, 6..) => version = Some((data[0], data[1], u16::from_be_bytes([data[2], data[3]]))),
            (1, 1..) => {
                encryption = Some(match data[0] {
                    0x02 => ServerEncryption::NotSupported,
                    0x00 => ServerEncryption::LoginOnly,
                    _ => ServerEncryption::Forced,
                })
            }
            _ => {}
        }
        i += 5;
    }
    Some(ServerPrelogin {
        version: version?,
        encryption: encryption?,
    })
}

/// What doctor advises when the connection failed in or around the TLS handshake, from what
/// the server's PRELOGIN answer says about it; `None` when the failure is not about TLS.
pub(super) fn tls_failure_fix(
    msg: &str,
    e: &ErpDbConfig,
    server: Option<&ServerPrelogin>,
) -> Option<String> {
    let m = msg.to_lowercase();
    let product = server
        .map(|s| s.product())
        .unwrap_or_else(|| "the server".into());
    if let Some(s) = server {
        if s.encryption == ServerEncryption::NotSupported && e.encrypt != ErpEncrypt::Plaintext {
            return Some(format!(
                "{product} offers no encryption at all (not even for the login): set \
                 MSSQL_ENCRYPT=plaintext, and know that the login password and the documents then \
                 travel in clear text; better, give the server a certificate (SQL Server \
                 Configuration Manager → Protocols → Certificate) and keep MSSQL_ENCRYPT=true"
            ));
        }
    }
    if tls_version_refused(&m) {
        return Some(format!(
            "{product} and mikro-sync share no TLS version: enable TLS 1.2 on the SQL Server, \
             or for a server that only speaks TLS 1.0/1.1 set OPENSSL_CONF to the file \
             docs/configuration.md shows (The Mikro database → Encryption)"
        ));
    }
    let handshake = ["handshake", "unexpected eof", "ssl routines", "tls", "ssl"]
        .iter()
        .any(|k| m.contains(k));
    if !handshake {
        return None;
    }
    Some(format!(
        "the TLS handshake with {product} failed: for SQL Server 2008 R2–2014 without the TLS 1.2 \
         updates set OPENSSL_CONF to the file docs/configuration.md shows (The Mikro database → \
         Encryption); SQL Server 2022 with \"Force Strict Encryption\" (TDS 8) is not supported, \
         turn it off; see docs/install.md, \"Legacy SQL Server and TLS\""
    ))
}

/// OpenSSL's ways of saying that client and server found no common TLS version.
pub(super) fn tls_version_refused(msg: &str) -> bool {
    let m = msg.to_lowercase();
    [
        "unsupported protocol",
        "protocol version",
        "no protocols available",
    ]
    .iter()
    .any(|s| m.contains(s))
}
