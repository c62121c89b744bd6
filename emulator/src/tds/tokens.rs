//! Writing the server's token stream: COLMETADATA, ROW, DONE/DONEPROC/DONEINPROC, ERROR, INFO,
//! ENVCHANGE, LOGINACK, RETURNSTATUS, FEATUREEXTACK.
//!
//! Why a [`TokenWriter`] that tracks DONE tokens: the last DONE of a response must not carry
//! DONE_MORE while every earlier one must, and clients (FreeTDS in particular) rely on those
//! bits to know where a response ends. The writer holds back the most recent DONE until it
//! knows whether another one follows.

use super::types::{write_type_info, write_value, COLLATION};
use super::{put_b_varchar, put_us_varchar};
use crate::value::{Column, SqlError, TxEvent, Value};

/// DONE status: more results follow.
pub const DONE_MORE: u16 = 0x0001;
/// DONE status: the statement failed.
pub const DONE_ERROR: u16 = 0x0002;
/// DONE status: the row count is valid.
pub const DONE_COUNT: u16 = 0x0010;
/// DONE status: acknowledges an Attention.
pub const DONE_ATTN: u16 = 0x0020;
/// DONE status: severe server error.
pub const DONE_SRVERROR: u16 = 0x0100;

/// Token kinds for DONE-like tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoneKind {
    /// DONE (0xFD): end of a statement in a batch.
    Done,
    /// DONEPROC (0xFE): end of a stored procedure / RPC.
    Proc,
    /// DONEINPROC (0xFF): end of a statement inside a procedure / RPC.
    InProc,
}

impl DoneKind {
    fn byte(self) -> u8 {
        match self {
            DoneKind::Done => 0xFD,
            DoneKind::Proc => 0xFE,
            DoneKind::InProc => 0xFF,
        }
    }
}

/// Server name reported in ERROR/INFO tokens.
pub const SERVER_NAME: &str = "mikro-emulator";

/// Accumulates one response's tokens.
#[derive(Debug, Default)]
pub struct TokenWriter {
    buf: Vec<u8>,
    /// Byte offset of the last DONE-like token's status field, to patch DONE_MORE in.
    last_done_status: Option<usize>,
    /// An error of severity 20 or more was written: SQL Server ends the connection after it.
    fatal: bool,
}

impl TokenWriter {
    /// An empty response.
    pub fn new() -> Self {
        Self::default()
    }

    /// The encoded tokens.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Whether an error of severity 20+ was written; the session must close the connection
    /// after sending this response, as SQL Server does.
    pub fn is_fatal(&self) -> bool {
        self.fatal
    }

    /// Whether the most recent token written was a DONE-like token.
    pub fn ends_with_done(&self) -> bool {
        matches!(self.last_done_status, Some(p) if p + 12 == self.buf.len())
    }

    /// Writes a DONE / DONEPROC / DONEINPROC. A previous DONE of the same response gets
    /// DONE_MORE set, since this one follows it.
    pub fn done(&mut self, kind: DoneKind, status: u16, cur_cmd: u16, rows: u64) {
        let status = if self.fatal {
            status | DONE_ERROR | DONE_SRVERROR
        } else {
            status
        };
        if let Some(p) = self.last_done_status {
            let s = u16::from_le_bytes([self.buf[p], self.buf[p + 1]]) | DONE_MORE;
            self.buf[p..p + 2].copy_from_slice(&s.to_le_bytes());
        }
        self.buf.push(kind.byte());
        self.last_done_status = Some(self.buf.len());
        self.buf.extend_from_slice(&status.to_le_bytes());
        self.buf.extend_from_slice(&cur_cmd.to_le_bytes());
        self.buf.extend_from_slice(&rows.to_le_bytes());
    }

    fn with_len(&mut self, token: u8, body: &[u8]) {
        self.buf.push(token);
        self.buf
            .extend_from_slice(&(body.len() as u16).to_le_bytes());
        self.buf.extend_from_slice(body);
    }

    fn message(&mut self, token: u8, number: i32, state: u8, class: u8, msg: &str, line: u32) {
        // The token length is 16 bits: keep long messages (e.g. echoing a huge statement) well
        // inside it.
        let msg = match msg.char_indices().nth(8000) {
            Some((i, _)) => &msg[..i],
            None => msg,
        };
        let mut b = Vec::new();
        b.extend_from_slice(&number.to_le_bytes());
        b.push(state);
        b.push(class);
        put_us_varchar(&mut b, msg);
        put_b_varchar(&mut b, SERVER_NAME);
        put_b_varchar(&mut b, "");
        b.extend_from_slice(&line.to_le_bytes());
        self.with_len(token, &b);
    }

    /// ERROR (0xAA).
    pub fn error(&mut self, e: &SqlError) {
        if e.class >= 20 {
            self.fatal = true;
        }
        self.message(0xAA, e.number, e.state, e.class, &e.message, 1);
    }

    /// ERROR with a 2-byte line number, for refusing pre-7.2 clients in their own format.
    pub fn error_legacy(&mut self, e: &SqlError) {
        let mut b = Vec::new();
        b.extend_from_slice(&e.number.to_le_bytes());
        b.push(e.state);
        b.push(e.class);
        put_us_varchar(&mut b, &e.message);
        put_b_varchar(&mut b, SERVER_NAME);
        put_b_varchar(&mut b, "");
        b.extend_from_slice(&1u16.to_le_bytes());
        self.with_len(0xAA, &b);
    }

    /// INFO (0xAB).
    pub fn info(&mut self, number: i32, class: u8, msg: &str) {
        self.message(0xAB, number, 1, class, msg, 1);
    }

    /// ENVCHANGE with B_VARCHAR new/old values (database, language, packet size).
    pub fn env_text(&mut self, ty: u8, new: &str, old: &str) {
        let mut b = vec![ty];
        put_b_varchar(&mut b, new);
        put_b_varchar(&mut b, old);
        self.with_len(0xE3, &b);
    }

    /// ENVCHANGE 7: SQL collation (Turkish_CI_AS).
    pub fn env_collation(&mut self) {
        let mut b = vec![7, COLLATION.len() as u8];
        b.extend_from_slice(&COLLATION);
        b.push(0);
        self.with_len(0xE3, &b);
    }

    /// ENVCHANGE 8/9/10 for a transaction event, with the 8-byte descriptor.
    pub fn env_tx(&mut self, ev: TxEvent) {
        let (ty, new, old) = match ev {
            TxEvent::Begin(d) => (8u8, Some(d), None),
            TxEvent::Commit(d) => (9, None, Some(d)),
            TxEvent::Rollback(d) => (10, None, Some(d)),
        };
        let mut b = vec![ty];
        for v in [new, old] {
            match v {
                Some(d) => {
                    b.push(8);
                    b.extend_from_slice(&d.to_le_bytes());
                }
                None => b.push(0),
            }
        }
        self.with_len(0xE3, &b);
    }

    /// LOGINACK (0xAD): interface T-SQL, the TDS version (big-endian on the wire), program
    /// name and version.
    pub fn login_ack(&mut self, tds_version: u32, prog_name: &str, version: [u8; 4]) {
        let mut b = vec![1u8];
        b.extend_from_slice(&tds_version.to_be_bytes());
        put_b_varchar(&mut b, prog_name);
        b.extend_from_slice(&version);
        self.with_len(0xAD, &b);
    }

    /// FEATUREEXTACK (0xAE) acknowledging no feature.
    pub fn feature_ext_ack_empty(&mut self) {
        self.buf.extend_from_slice(&[0xAE, 0xFF]);
    }

    /// Appends pre-encoded token bytes (e.g. RETURNVALUE).
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// RETURNSTATUS (0x79).
    pub fn return_status(&mut self, v: i32) {
        self.buf.push(0x79);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// COLMETADATA (0x81) for a result set.
    pub fn col_metadata(&mut self, cols: &[Column]) {
        self.buf.push(0x81);
        self.buf
            .extend_from_slice(&(cols.len().min(u16::MAX as usize) as u16).to_le_bytes());
        for c in cols {
            self.buf.extend_from_slice(&0u32.to_le_bytes()); // UserType
            let flags: u16 = if c.nullable { 0x0001 } else { 0 } | 0x0008;
            self.buf.extend_from_slice(&flags.to_le_bytes());
            write_type_info(&mut self.buf, &c.ty);
            put_b_varchar(&mut self.buf, &c.name);
        }
    }

    /// ROW (0xD1). On a conversion error nothing is written and the error is returned.
    pub fn row(&mut self, cols: &[Column], values: &[Value]) -> Result<(), SqlError> {
        let start = self.buf.len();
        self.buf.push(0xD1);
        for (i, c) in cols.iter().enumerate() {
            let v = values.get(i).unwrap_or(&Value::Null);
            if let Err(e) = write_value(&mut self.buf, &c.ty, v) {
                self.buf.truncate(start);
                return Err(e);
            }
        }
        Ok(())
    }
}
