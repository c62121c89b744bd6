//! TDS packet framing: an 8-byte header (type, status, big-endian length, SPID, packet id,
//! window) in front of at most `packet size - 8` payload bytes. A message is a run of packets
//! whose last one carries the END_OF_MESSAGE status bit.
//!
//! Why both directions matter: tiberius splits large RPC calls (long strings, PLP values, long
//! query texts) over several packets, and a large result set must be split by the server at the
//! negotiated packet size or clients reject the packet.

use super::TdsError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Size of the packet header.
pub const HEADER_LEN: usize = 8;
/// Status bit: last packet of the message.
pub const STATUS_EOM: u8 = 0x01;
/// Status bit: the client asks the server to ignore this message (sent with EOM on cancel).
pub const STATUS_IGNORE: u8 = 0x02;
/// Packet size before LOGIN7 negotiates one.
pub const DEFAULT_PACKET_SIZE: usize = 4096;
/// Smallest and largest packet sizes SQL Server accepts.
pub const MIN_PACKET_SIZE: usize = 512;
/// See [`MIN_PACKET_SIZE`].
pub const MAX_PACKET_SIZE: usize = 32767;
/// A client message larger than this is refused (protects the server from a broken client).
pub const MAX_MESSAGE_LEN: usize = 256 * 1024 * 1024;

/// TDS packet types this server reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// SQL batch (client).
    SqlBatch,
    /// Remote procedure call (client).
    Rpc,
    /// Tabular result (server).
    TabularResult,
    /// Attention signal / cancel (client).
    Attention,
    /// Bulk load data (client; refused).
    BulkLoad,
    /// Federated authentication token (client; refused).
    FedAuthToken,
    /// Transaction Manager request (client).
    TransactionManager,
    /// LOGIN7 (client).
    Login7,
    /// SSPI (client; refused).
    Sspi,
    /// PRELOGIN, also the carrier of TLS handshake records.
    PreLogin,
    /// Any other value.
    Other(u8),
}

impl PacketType {
    /// Decodes the header's type byte.
    pub fn from_u8(b: u8) -> Self {
        match b {
            0x01 => PacketType::SqlBatch,
            0x03 => PacketType::Rpc,
            0x04 => PacketType::TabularResult,
            0x06 => PacketType::Attention,
            0x07 => PacketType::BulkLoad,
            0x08 => PacketType::FedAuthToken,
            0x0E => PacketType::TransactionManager,
            0x10 => PacketType::Login7,
            0x11 => PacketType::Sspi,
            0x12 => PacketType::PreLogin,
            o => PacketType::Other(o),
        }
    }

    /// The header's type byte.
    pub fn as_u8(self) -> u8 {
        match self {
            PacketType::SqlBatch => 0x01,
            PacketType::Rpc => 0x03,
            PacketType::TabularResult => 0x04,
            PacketType::Attention => 0x06,
            PacketType::BulkLoad => 0x07,
            PacketType::FedAuthToken => 0x08,
            PacketType::TransactionManager => 0x0E,
            PacketType::Login7 => 0x10,
            PacketType::Sspi => 0x11,
            PacketType::PreLogin => 0x12,
            PacketType::Other(o) => o,
        }
    }
}

/// A complete client message (all packets reassembled).
#[derive(Debug, Clone)]
pub struct Message {
    /// Type of the first packet.
    pub ty: PacketType,
    /// Status of the last packet (EOM, IGNORE, RESETCONNECTION bits).
    pub status: u8,
    /// Concatenated payloads.
    pub data: Vec<u8>,
}

/// Reads one message: packets until one carries END_OF_MESSAGE. Returns `Ok(None)` on a clean
/// end of stream before the first header byte.
pub async fn read_message<S: AsyncRead + Unpin>(io: &mut S) -> Result<Option<Message>, TdsError> {
    let mut data = Vec::new();
    let mut first_ty = None;
    loop {
        let mut h = [0u8; HEADER_LEN];
        // Distinguish a clean close (no bytes at all) from a truncated header.
        let n = io.read(&mut h[..1]).await?;
        if n == 0 {
            if first_ty.is_none() {
                return Ok(None);
            }
            return Err(TdsError::Truncated("packet header (connection closed)"));
        }
        io.read_exact(&mut h[1..]).await?;
        let ty = PacketType::from_u8(h[0]);
        let status = h[1];
        let len = u16::from_be_bytes([h[2], h[3]]) as usize;
        if len < HEADER_LEN {
            return Err(TdsError::Invalid(format!(
                "packet length {len} below header size"
            )));
        }
        let start = data.len();
        if start + len - HEADER_LEN > MAX_MESSAGE_LEN {
            return Err(TdsError::Invalid("client message exceeds 256 MiB".into()));
        }
        data.resize(start + len - HEADER_LEN, 0);
        io.read_exact(&mut data[start..]).await?;
        let ty0 = *first_ty.get_or_insert(ty);
        // An Attention packet may arrive on its own while we wait for the rest of nothing;
        // it is always a single packet.
        if status & STATUS_EOM != 0 || ty == PacketType::Attention {
            return Ok(Some(Message {
                ty: ty0,
                status,
                data,
            }));
        }
    }
}

/// Frames `payload` as a message of `ty` in packets of at most `packet_size` bytes each
/// (header included) and appends them to `out`. `packet_id` is advanced per packet.
pub fn frame_message(
    out: &mut Vec<u8>,
    ty: PacketType,
    payload: &[u8],
    packet_size: usize,
    spid: u16,
    packet_id: &mut u8,
) {
    let chunk = packet_size.clamp(MIN_PACKET_SIZE, MAX_PACKET_SIZE) - HEADER_LEN;
    let mut chunks = payload.chunks(chunk).peekable();
    if payload.is_empty() {
        push_packet(out, ty, STATUS_EOM, &[], spid, packet_id);
        return;
    }
    while let Some(c) = chunks.next() {
        let status = if chunks.peek().is_none() {
            STATUS_EOM
        } else {
            0
        };
        push_packet(out, ty, status, c, spid, packet_id);
    }
}

fn push_packet(out: &mut Vec<u8>, ty: PacketType, status: u8, data: &[u8], spid: u16, id: &mut u8) {
    let len = (data.len() + HEADER_LEN) as u16;
    out.push(ty.as_u8());
    out.push(status);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&spid.to_be_bytes());
    out.push(*id);
    out.push(0);
    out.extend_from_slice(data);
    *id = id.wrapping_add(1);
}

/// Frames and writes a whole message, then flushes (TLS streams need the flush).
pub async fn write_message<S: AsyncWrite + Unpin>(
    io: &mut S,
    ty: PacketType,
    payload: &[u8],
    packet_size: usize,
    spid: u16,
) -> Result<(), TdsError> {
    let mut out = Vec::with_capacity(payload.len() + payload.len() / 512 * 8 + 16);
    let mut id = 1u8;
    frame_message(&mut out, ty, payload, packet_size, spid, &mut id);
    io.write_all(&out).await?;
    io.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_and_reassembles_multi_packet_messages() {
        let payload: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut wire = Vec::new();
        let mut id = 0;
        frame_message(&mut wire, PacketType::Rpc, &payload, 512, 0, &mut id);
        assert_eq!(id as usize, payload.len().div_ceil(504));
        let mut cursor = std::io::Cursor::new(wire);
        let msg = read_message(&mut cursor).await.unwrap().unwrap();
        assert_eq!(msg.ty, PacketType::Rpc);
        assert_eq!(msg.data, payload);
        assert!(read_message(&mut cursor).await.unwrap().is_none());
    }
}
