//! TLS inside TDS: until the handshake completes, TLS records travel as the payload of
//! PRELOGIN (0x12) packets; afterwards they run directly on the TCP stream (TDS packets inside
//! TLS). [`PreloginWrapper`] does the framing during the handshake so an ordinary rustls
//! acceptor can be used, and turns into a pass-through afterwards.
//!
//! Why each flight is one message: SQL Server sends everything a handshake step produces
//! (e.g. ServerHello + Certificate + ServerKeyExchange + ServerHelloDone) as one PRELOGIN
//! message, and tedious (npm `mssql`) reads exactly one message per flight; writes are
//! therefore collected until rustls flushes and framed then.
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
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

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
    let key_der = ck.signing_key.serialize_der();
    // ring rather than aws-lc-rs (no cmake/C toolchain step); its "no post-quantum key exchange"
    // deprecation does not matter for TLS 1.2 with a throwaway test certificate.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der)),
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
    /// TLS bytes of the current flight, framed when rustls flushes.
    pending: Vec<u8>,
    /// Framed bytes not yet written to `inner`.
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
            pending: Vec::new(),
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

impl<S> PreloginWrapper<S> {
    /// Frames the collected flight as one PRELOGIN message (several packets when it is larger
    /// than a packet, end-of-message on the last only).
    fn frame_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let chunks = pending.chunks(HANDSHAKE_PACKET - HEADER_LEN);
        let count = chunks.len();
        for (i, c) in chunks.enumerate() {
            let status = if i + 1 == count { STATUS_EOM } else { 0 };
            self.wbuf.push(PacketType::PreLogin.as_u8());
            self.wbuf.push(status);
            self.wbuf
                .extend_from_slice(&((c.len() + HEADER_LEN) as u16).to_be_bytes());
            self.wbuf.extend_from_slice(&[0, 0, self.packet_id, 0]);
            self.packet_id = self.packet_id.wrapping_add(1);
            self.wbuf.extend_from_slice(c);
        }
    }
}

impl<S: AsyncWrite + Unpin> PreloginWrapper<S> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.frame_pending();
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
            if !this.pending.is_empty() || this.wpos < this.wbuf.len() {
                ready!(this.poll_drain(cx))?;
            }
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        // Collect the flight; tokio-rustls flushes after writing everything a handshake step
        // produced, and the flush frames it.
        this.pending.extend_from_slice(buf);
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_flight_is_one_prelogin_message() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut w = PreloginWrapper::new(server);
        // Three records written separately, then one flush: one message.
        w.write_all(&[0x16; 100]).await.unwrap();
        w.write_all(&[0x16; 5000]).await.unwrap();
        w.write_all(&[0x16; 50]).await.unwrap();
        w.flush().await.unwrap();
        drop(w);
        let mut all = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut client, &mut all)
            .await
            .unwrap();
        let mut pos = 0;
        let mut statuses = Vec::new();
        let mut payload = 0;
        while pos < all.len() {
            assert_eq!(all[pos], PacketType::PreLogin.as_u8());
            statuses.push(all[pos + 1]);
            let len = u16::from_be_bytes([all[pos + 2], all[pos + 3]]) as usize;
            payload += len - HEADER_LEN;
            pos += len;
        }
        assert_eq!(payload, 5150);
        assert_eq!(
            statuses,
            vec![0, STATUS_EOM],
            "two packets, EOM only on the last"
        );
    }
}
