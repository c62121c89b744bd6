//! TLS inside TDS: until the handshake completes, TLS records travel as the payload of
//! PRELOGIN (0x12) packets; afterwards they run directly on the TCP stream (TDS packets inside
//! TLS). [`PreloginWrapper`] does the framing during the handshake so an ordinary rustls
//! acceptor can be used, and turns into a pass-through afterwards.
//!
//! Why TLS 1.2 only: SQL Server's TDS 7.x handshake-in-PRELOGIN predates TLS 1.3, and with
//! TLS 1.3 the server would send session tickets after the client considers the handshake done
//! (still framed as PRELOGIN), which clients then misread.

use super::packet::{PacketType, HEADER_LEN, STATUS_EOM};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::rustls;

/// Largest PRELOGIN packet written during the handshake (the default packet size).
const HANDSHAKE_PACKET: usize = 4096;

/// A self-signed certificate generated at start, and the acceptor built from it.
#[derive(Clone)]
pub struct TlsIdentity {
    /// The acceptor for new connections.
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// The certificate in DER, for clients that want to pin it.
    pub cert_der: Vec<u8>,
    /// The certificate in PEM.
    pub cert_pem: String,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

/// Generates a self-signed certificate for `localhost`/`127.0.0.1` and a TLS 1.2 acceptor.
pub fn generate_identity() -> Result<TlsIdentity, String> {
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "mikro-emulator".to_string(),
    ];
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| e.to_string())?;
    let cert_der = ck.cert.der().to_vec();
    let cert_pem = ck.cert.pem();
    let key_der = ck.key_pair.serialize_der();
    let config = rustls::ServerConfig::builder()
        .with_safe_default_cipher_suites()
        .with_safe_default_kx_groups()
        .with_protocol_versions(&[&rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::Certificate(cert_der.clone())],
            rustls::PrivateKey(key_der),
        )
        .map_err(|e| e.to_string())?;
    Ok(TlsIdentity {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        cert_der,
        cert_pem,
    })
}

/// Frames TLS handshake records in PRELOGIN packets while `handshaking`, passes bytes through
/// afterwards.
#[derive(Debug)]
pub struct PreloginWrapper<S> {
    inner: S,
    handshaking: bool,
    header: [u8; HEADER_LEN],
    header_pos: usize,
    read_remaining: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    packet_id: u8,
}

impl<S> PreloginWrapper<S> {
    /// Wraps a stream at the start of the handshake.
    pub fn new(inner: S) -> Self {
        PreloginWrapper {
            inner,
            handshaking: true,
            header: [0; HEADER_LEN],
            header_pos: 0,
            read_remaining: 0,
            wbuf: Vec::new(),
            wpos: 0,
            packet_id: 1,
        }
    }

    /// Called once the handshake is done: from now on bytes pass through unframed.
    pub fn handshake_complete(&mut self) {
        self.handshaking = false;
    }

    /// The wrapped stream (for login-only encryption, which drops TLS after LOGIN7).
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for PreloginWrapper<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.handshaking {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        while this.read_remaining == 0 {
            // Read (the rest of) a packet header.
            while this.header_pos < HEADER_LEN {
                let mut hb = ReadBuf::new(&mut this.header[this.header_pos..]);
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut hb))?;
                let n = hb.filled().len();
                if n == 0 {
                    return Poll::Ready(Ok(())); // EOF
                }
                this.header_pos += n;
            }
            this.header_pos = 0;
            if this.header[0] != PacketType::PreLogin.as_u8() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "expected a PRELOGIN packet during the TLS handshake, got type 0x{:02X}",
                        this.header[0]
                    ),
                )));
            }
            let len = u16::from_be_bytes([this.header[2], this.header[3]]) as usize;
            this.read_remaining = len.saturating_sub(HEADER_LEN);
        }
        let want = this.read_remaining.min(buf.remaining());
        let mut limited = ReadBuf::new(buf.initialize_unfilled_to(want));
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut limited))?;
        let n = limited.filled().len();
        buf.advance(n);
        this.read_remaining -= n;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> PreloginWrapper<S> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.wpos < self.wbuf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.wbuf[self.wpos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wpos += n;
        }
        self.wbuf.clear();
        self.wpos = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PreloginWrapper<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.handshaking {
            if this.wpos < this.wbuf.len() {
                ready!(this.poll_drain(cx))?;
            }
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        // Frame every write as its own PRELOGIN message (possibly several packets); rustls
        // writes whole record batches, and clients read packet by packet.
        if this.wpos < this.wbuf.len() {
            ready!(this.poll_drain(cx))?;
        }
        let chunks = buf.chunks(HANDSHAKE_PACKET - HEADER_LEN);
        let count = chunks.len();
        for (i, c) in buf.chunks(HANDSHAKE_PACKET - HEADER_LEN).enumerate() {
            let status = if i + 1 == count { STATUS_EOM } else { 0 };
            this.wbuf.push(PacketType::PreLogin.as_u8());
            this.wbuf.push(status);
            this.wbuf
                .extend_from_slice(&((c.len() + HEADER_LEN) as u16).to_be_bytes());
            this.wbuf.extend_from_slice(&[0, 0, this.packet_id, 0]);
            this.packet_id = this.packet_id.wrapping_add(1);
            this.wbuf.extend_from_slice(c);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
