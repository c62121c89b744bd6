//! LOGIN7: the client's credentials, TDS version, packet size and initial database.
//!
//! Why the version check: FreeTDS misbehaves with this server at TDS 7.1, and 7.3/7.4 are what
//! all three clients speak; an older version is refused at login with a clear message rather
//! than failing later in an obscure way.

use super::{Reader, TdsError};

/// TDS 7.3A as sent in LOGIN7 (and echoed in LOGINACK).
pub const TDS_73A: u32 = 0x730A_0003;
/// TDS 7.3B.
pub const TDS_73B: u32 = 0x730B_0003;
/// TDS 7.4.
pub const TDS_74: u32 = 0x7400_0004;

/// The LOGIN7 fields this server acts on. The password is never logged (no `Debug` of it).
#[derive(Clone)]
pub struct Login7 {
    /// TDS version the client speaks (e.g. [`TDS_74`]).
    pub tds_version: u32,
    /// Requested packet size (0 = server default).
    pub packet_size: u32,
    /// Client host name.
    pub hostname: String,
    /// SQL authentication user name.
    pub username: String,
    /// Decoded SQL authentication password.
    pub password: String,
    /// Application name.
    pub app_name: String,
    /// Server name as the client knows it.
    pub server_name: String,
    /// Initial database ("" = the login's default).
    pub database: String,
    /// Client language ("" = default).
    pub language: String,
    /// fIntSecurity: the client wants Windows/SSPI authentication (refused).
    pub integrated_security: bool,
    /// fExtension: the client appended a FeatureExt block (answered with FEATUREEXTACK).
    pub feature_ext: bool,
}

impl std::fmt::Debug for Login7 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login7")
            .field("tds_version", &format_args!("{:#010x}", self.tds_version))
            .field("packet_size", &self.packet_size)
            .field("hostname", &self.hostname)
            .field("username", &self.username)
            .field("app_name", &self.app_name)
            .field("database", &self.database)
            .field("integrated_security", &self.integrated_security)
            .finish_non_exhaustive()
    }
}

impl Login7 {
    /// Whether this server speaks the client's TDS version (7.3A, 7.3B, 7.4 or later 7.x).
    pub fn version_supported(&self) -> bool {
        self.tds_version >= TDS_73A && (self.tds_version >> 24) <= 0x74
    }

    /// The version to announce in LOGINACK: the client's own when known, else 7.4.
    pub fn ack_version(&self) -> u32 {
        match self.tds_version {
            TDS_73A | TDS_73B | TDS_74 => self.tds_version,
            v if v >> 24 == 0x73 => TDS_73B,
            _ => TDS_74,
        }
    }

    /// Human-readable version ("7.4"), for messages.
    pub fn version_name(&self) -> String {
        let major = (self.tds_version >> 28) & 0xF;
        let minor = (self.tds_version >> 24) & 0xF;
        // Pre-7.1 clients send the bytes the other way round (e.g. 0x00000070).
        if major == 0 {
            let b = self.tds_version.to_le_bytes();
            return format!("{}.{}", b[0] >> 4, b[0] & 0xF);
        }
        format!("{major}.{minor}")
    }
}

/// Decodes the password obfuscation (nibble swap, then XOR 0xA5, per byte).
fn decode_password(b: &[u8]) -> String {
    let clear: Vec<u8> = b
        .iter()
        .map(|x| {
            let y = x ^ 0xA5;
            y.rotate_left(4)
        })
        .collect();
    super::utf16_to_string(&clear)
}

/// Parses a LOGIN7 message.
pub fn parse(data: &[u8]) -> Result<Login7, TdsError> {
    let mut r = Reader::new(data);
    let _length = r.u32_le("LOGIN7 length")?;
    let tds_version = r.u32_le("TDSVersion")?;
    let packet_size = r.u32_le("PacketSize")?;
    let _prog_ver = r.u32_le("ClientProgVer")?;
    let _pid = r.u32_le("ClientPID")?;
    let _conn_id = r.u32_le("ConnectionID")?;
    let _flags1 = r.u8("OptionFlags1")?;
    let flags2 = r.u8("OptionFlags2")?;
    let _type_flags = r.u8("TypeFlags")?;
    let flags3 = r.u8("OptionFlags3")?;
    let _tz = r.u32_le("ClientTimeZone")?;
    let _lcid = r.u32_le("ClientLCID")?;

    let field = |r: &mut Reader<'_>, what: &'static str| -> Result<(usize, usize), TdsError> {
        let off = r.u16_le(what)? as usize;
        let len = r.u16_le(what)? as usize;
        Ok((off, len))
    };
    let host = field(&mut r, "ibHostName")?;
    let user = field(&mut r, "ibUserName")?;
    let pass = field(&mut r, "ibPassword")?;
    let app = field(&mut r, "ibAppName")?;
    let server = field(&mut r, "ibServerName")?;
    let _ext = field(&mut r, "ibExtension")?;
    let _clt = field(&mut r, "ibCltIntName")?;
    let lang = field(&mut r, "ibLanguage")?;
    let db = field(&mut r, "ibDatabase")?;

    let text = |(off, len): (usize, usize), what: &'static str| -> Result<String, TdsError> {
        if len == 0 {
            return Ok(String::new());
        }
        let end = off + len * 2;
        if end > data.len() {
            return Err(TdsError::Truncated(what));
        }
        Ok(super::utf16_to_string(&data[off..end]))
    };
    let password = {
        let (off, len) = pass;
        let end = off + len * 2;
        if end > data.len() {
            return Err(TdsError::Truncated("password"));
        }
        decode_password(&data[off..end])
    };
    Ok(Login7 {
        tds_version,
        packet_size,
        hostname: text(host, "hostname")?,
        username: text(user, "username")?,
        password,
        app_name: text(app, "app name")?,
        server_name: text(server, "server name")?,
        database: text(db, "database")?,
        language: text(lang, "language")?,
        integrated_security: flags2 & 0x80 != 0,
        feature_ext: flags3 & 0x10 != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_obfuscation_round_trips() {
        // Encode as tiberius does: swap nibbles then XOR 0xA5.
        let mut enc = Vec::new();
        for u in "Şifre1!".encode_utf16() {
            for b in u.to_le_bytes() {
                enc.push(((b << 4) & 0xf0 | (b >> 4) & 0x0f) ^ 0xA5);
            }
        }
        assert_eq!(decode_password(&enc), "Şifre1!");
    }

    #[test]
    fn versions() {
        let mut l = Login7 {
            tds_version: TDS_74,
            packet_size: 4096,
            hostname: String::new(),
            username: String::new(),
            password: String::new(),
            app_name: String::new(),
            server_name: String::new(),
            database: String::new(),
            language: String::new(),
            integrated_security: false,
            feature_ext: false,
        };
        assert!(l.version_supported());
        l.tds_version = TDS_73A;
        assert!(l.version_supported());
        l.tds_version = 0x7100_0001;
        assert!(!l.version_supported());
        assert_eq!(l.version_name(), "7.1");
    }
}
