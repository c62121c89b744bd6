//! The TCP accept loop and per-connection TDS session driver.
//!
//! One tokio task per connection, one engine [`Session`] per connection (opened after a
//! successful login). Graceful shutdown follows tokio's mini-redis: a broadcast channel tells
//! the accept loop and every connection to stop, and an mpsc channel whose senders are held by
//! the tasks lets [`EmulatorHandle::shutdown`] wait until the last one has finished (a
//! connection finishes the request it is executing, closes its session, then exits).
//!
//! A broken client must never take the server down: every decode is bounds-checked and every
//! failure ends only that connection.

use crate::engine::{Engine, Session};
use crate::tds::login::{self, Login7};
use crate::tds::packet::{
    read_message, write_message, Message, PacketType, DEFAULT_PACKET_SIZE, MAX_PACKET_SIZE,
    MIN_PACKET_SIZE, STATUS_IGNORE,
};
use crate::tds::prelogin::{self, Encryption};
use crate::tds::rpc::{self, Declared, RpcCall, RpcParam};
use crate::tds::tls::{generate_identity, PreloginWrapper, TlsIdentity};
use crate::tds::tokens::{DoneKind, TokenWriter, DONE_ATTN, DONE_COUNT, DONE_ERROR, DONE_MORE};
use crate::tds::{read_all_headers, utf16_to_string, Reader, TdsError};
use crate::value::{Output, Param, SqlError, SqlType, Value};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, info_span, warn, Instrument};

/// Whether and how the emulator offers TLS in PRELOGIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Never encrypt: PRELOGIN answers ENCRYPT_NOT_SUP (tiberius `EncryptionLevel::NotSupported`).
    Off,
    /// Encrypt when the client asks for it (certificate generated at start), plaintext otherwise.
    #[default]
    Optional,
    /// Refuse clients that do not encrypt.
    Required,
}

/// Everything needed to start one emulated SQL Server.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// PostgreSQL database that stores the emulated database's tables.
    pub pg_url: String,
    /// SQL authentication login accepted by LOGIN7 (compared case-insensitively, as SQL Server
    /// compares login names).
    pub user: String,
    /// Its password (compared exactly; never logged).
    pub password: String,
    /// Database name announced in ENVCHANGE and accepted in LOGIN7.
    pub database: String,
    /// What PRELOGIN offers: no TLS, TLS on request, or TLS required.
    pub tls: TlsMode,
}

/// Errors that stop the emulator from starting.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The listen address is taken or not available.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why binding failed.
        source: std::io::Error,
    },
    /// The engine could not be built on the PostgreSQL database.
    #[error("cannot reach the backing PostgreSQL database: {0}")]
    Backend(String),
    /// The self-signed certificate or the TLS configuration could not be built.
    #[error("TLS setup failed: {0}")]
    Tls(String),
}

/// A running emulator. Dropping it stops accepting; [`EmulatorHandle::shutdown`] also waits for
/// open sessions to end.
#[derive(Debug)]
pub struct EmulatorHandle {
    /// The address actually bound (with the real port when 0 was asked for).
    pub addr: SocketAddr,
    stop_tx: Option<oneshot::Sender<()>>,
    shutdown_complete_rx: mpsc::Receiver<()>,
    accept_task: Option<JoinHandle<()>>,
    engine: Arc<Engine>,
    tls: Option<TlsIdentity>,
    rpc_stats: Arc<RpcStats>,
}

impl EmulatorHandle {
    /// Parameter counts of the RPC calls this server received (see [`RpcStats`]).
    pub fn rpc_stats(&self) -> Arc<RpcStats> {
        self.rpc_stats.clone()
    }

    /// Stops accepting connections, lets every connection finish its current request and
    /// close its session (rolling back open transactions), and returns when all are gone.
    pub async fn shutdown(self) {
        let EmulatorHandle {
            stop_tx,
            mut shutdown_complete_rx,
            accept_task,
            ..
        } = self;
        if let Some(tx) = stop_tx {
            let _ = tx.send(());
        }
        if let Some(t) = accept_task {
            let _ = t.await;
        }
        // Every connection task holds a sender; recv() yields None once all are dropped.
        let _ = shutdown_complete_rx.recv().await;
    }

    /// The engine behind this server, e.g. to load a schema through an engine session
    /// without going over the wire.
    pub fn engine(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    /// The self-signed certificate (PEM) offered in TLS handshakes, when TLS is enabled, so a
    /// client can trust exactly this certificate instead of trusting any.
    pub fn certificate_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.cert_pem.as_str())
    }

    /// The same certificate in DER.
    pub fn certificate_der(&self) -> Option<&[u8]> {
        self.tls.as_ref().map(|t| t.cert_der.as_slice())
    }
}

/// Starts the emulator; returns once it is listening.
pub async fn start(config: EmulatorConfig) -> Result<EmulatorHandle, EmulatorError> {
    let engine = Engine::with_database(&config.pg_url, Some(&config.database))
        .await
        .map_err(|e| EmulatorError::Backend(e.message))?;
    start_with_engine(config, engine).await
}

/// Like [`start`], with an engine the caller already built (and possibly loaded a schema
/// through), so the server and the caller share the engine's catalog.
pub async fn start_with_engine(
    config: EmulatorConfig,
    engine: Arc<Engine>,
) -> Result<EmulatorHandle, EmulatorError> {
    let tls = match config.tls {
        TlsMode::Off => None,
        _ => Some(generate_identity().map_err(EmulatorError::Tls)?),
    };
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| EmulatorError::Bind {
                addr: config.listen,
                source,
            })?;
    let addr = listener
        .local_addr()
        .map_err(|source| EmulatorError::Bind {
            addr: config.listen,
            source,
        })?;
    let (notify_shutdown, _) = broadcast::channel(1);
    let (stop_tx, stop_rx) = oneshot::channel();
    let (shutdown_complete_tx, shutdown_complete_rx) = mpsc::channel(1);
    let rpc_stats = Arc::new(RpcStats::default());
    let shared = Arc::new(Shared {
        engine: engine.clone(),
        config,
        tls: tls.clone(),
        next_spid: AtomicU16::new(51),
        rpc_stats: rpc_stats.clone(),
    });
    let listener_state = Listener {
        listener,
        shared,
        notify_shutdown,
        shutdown_complete_tx,
    };
    let accept_task = tokio::spawn(
        listener_state
            .run(stop_rx)
            .instrument(info_span!("emulator", %addr)),
    );
    info!(%addr, "mikro-emulator listening");
    Ok(EmulatorHandle {
        addr,
        stop_tx: Some(stop_tx),
        shutdown_complete_rx,
        accept_task: Some(accept_task),
        engine,
        tls,
        rpc_stats,
    })
}

/// Splits a T-SQL script into batches at lines that consist of `GO` alone (as sqlcmd and SSMS
/// do), dropping empty batches.
pub fn split_go_batches(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in script.lines() {
        if line.trim().eq_ignore_ascii_case("go") {
            if !cur.trim().is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            cur.clear();
        } else {
            cur.push_str(line);
            cur.push('\n');
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

struct Shared {
    engine: Arc<Engine>,
    config: EmulatorConfig,
    tls: Option<TlsIdentity>,
    next_spid: AtomicU16,
    rpc_stats: Arc<RpcStats>,
}

struct Listener {
    listener: TcpListener,
    shared: Arc<Shared>,
    notify_shutdown: broadcast::Sender<()>,
    shutdown_complete_tx: mpsc::Sender<()>,
}

impl Listener {
    /// Accepts until `stop` fires or its sender (the handle) is dropped, then tells every
    /// connection to finish.
    async fn run(self, mut stop: oneshot::Receiver<()>) {
        let notify = self.notify_shutdown;
        let mut backoff = 10u64;
        loop {
            tokio::select! {
                res = self.listener.accept() => match res {
                    Ok((sock, peer)) => {
                        backoff = 10;
                        let _ = sock.set_nodelay(true);
                        let spid = self.shared.next_spid.fetch_add(1, Ordering::Relaxed);
                        let shared = self.shared.clone();
                        let rx = notify.subscribe();
                        let done = self.shutdown_complete_tx.clone();
                        let span = info_span!("conn", spid, %peer);
                        tokio::spawn(async move {
                            handle_connection(sock, shared, spid, rx).await;
                            drop(done);
                        }.instrument(span));
                    }
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(backoff)).await;
                        backoff = (backoff * 2).min(1000);
                    }
                },
                _ = &mut stop => break,
            }
        }
        drop(self.listener);
        let _ = notify.send(());
        info!("stopped accepting connections");
    }
}

// ---------------------------------------------------------------------------------------------
// Transport

enum Transport {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<PreloginWrapper<TcpStream>>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connection

/// How long a client may take from connect to a finished login.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Announced SQL Server version (16.0.1000 = SQL Server 2022 RTM).
const SERVER_VERSION: (u8, u8, u16) = (16, 0, 1000);

struct Conn {
    /// Buffered: a request's packet headers and payloads come out of one read syscall.
    io: tokio::io::BufReader<Transport>,
    packet_size: usize,
    spid: u16,
}

impl Conn {
    async fn send(&mut self, payload: &[u8]) -> Result<(), TdsError> {
        write_message(
            &mut self.io,
            PacketType::TabularResult,
            payload,
            self.packet_size,
            self.spid,
        )
        .await
    }
}

async fn handle_connection(
    sock: TcpStream,
    shared: Arc<Shared>,
    spid: u16,
    mut shutdown: broadcast::Receiver<()>,
) {
    debug!("connection accepted");
    let established = tokio::select! {
        r = tokio::time::timeout(LOGIN_TIMEOUT, establish(sock, &shared, spid)) => match r {
            Ok(Ok(Some(x))) => x,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                debug!(error = %e, "connection ended before login completed");
                return;
            }
            Err(_) => {
                warn!("login timed out");
                return;
            }
        },
        _ = shutdown.recv() => return,
    };
    let (mut conn, mut session) = established;
    let mut state = ConnState {
        stats: shared.rpc_stats.clone(),
        ..ConnState::default()
    };
    // Requests that ended with a transaction open, since it began.
    let mut tx_requests = 0usize;
    loop {
        let msg = tokio::select! {
            r = read_message(&mut conn.io) => r,
            _ = shutdown.recv() => {
                debug!("server shutting down: closing idle connection");
                break;
            }
        };
        let msg = match msg {
            Ok(Some(m)) => m,
            Ok(None) => {
                debug!("client closed the connection");
                break;
            }
            Err(e) => {
                debug!(error = %e, "reading a request failed");
                break;
            }
        };
        let r = handle_message(&mut conn, &mut session, &mut state, msg).await;
        if session.trancount() > 0 {
            tx_requests += 1;
        } else if tx_requests > 0 {
            state.stats.record_transaction(tx_requests + 1);
            tx_requests = 0;
        }
        match r {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                debug!(error = %e, "connection failed");
                break;
            }
        }
    }
    if tx_requests > 0 {
        // Left open until the connection ended (rolled back by close).
        state.stats.record_transaction(tx_requests);
    }
    session.close().await;
    debug!("connection closed");
}

/// PRELOGIN, optional TLS handshake, LOGIN7 and the login response. `Ok(None)` when the
/// login was refused (the client has been told why).
async fn establish(
    mut sock: TcpStream,
    shared: &Shared,
    spid: u16,
) -> Result<Option<(Conn, Session)>, TdsError> {
    let cfg = &shared.config;
    let first = match read_message(&mut sock).await? {
        Some(m) => m,
        None => return Ok(None),
    };
    if first.ty != PacketType::PreLogin {
        let mut w = TokenWriter::new();
        w.error(&login_error(
            4002,
            14,
            "The incoming tabular data stream (TDS) protocol stream is incorrect: expected PRELOGIN. mikro-emulator speaks TDS 7.3 and 7.4 only.",
        ));
        w.done(DoneKind::Done, DONE_ERROR, 0, 0);
        let _ = write_message(
            &mut sock,
            PacketType::TabularResult,
            &w.into_bytes(),
            DEFAULT_PACKET_SIZE,
            spid,
        )
        .await;
        return Ok(None);
    }
    let pre = prelogin::parse(&first.data)?;
    let answer = match (cfg.tls, shared.tls.is_some(), pre.encryption) {
        (TlsMode::Off, _, _) | (_, false, _) => Encryption::NotSup,
        (TlsMode::Optional, _, Encryption::NotSup) => Encryption::NotSup,
        (TlsMode::Optional, _, Encryption::Off) => Encryption::Off,
        (TlsMode::Optional, _, _) => Encryption::On,
        (TlsMode::Required, _, Encryption::On) => Encryption::On,
        (TlsMode::Required, _, _) => Encryption::Req,
    };
    debug!(client = ?pre.encryption, server = ?answer, "PRELOGIN");
    write_message(
        &mut sock,
        PacketType::TabularResult,
        &prelogin::build_response(answer, SERVER_VERSION),
        DEFAULT_PACKET_SIZE,
        spid,
    )
    .await?;

    // A TLS handshake follows when the client sends PRELOGIN packets now.
    let mut io = Transport::Plain(sock);
    if answer != Encryption::NotSup {
        let mut b = [0u8; 1];
        let n = match &io {
            Transport::Plain(s) => s.peek(&mut b).await?,
            Transport::Tls(_) => 0,
        };
        if n == 0 {
            return Ok(None);
        }
        if b[0] == PacketType::PreLogin.as_u8() {
            let identity = shared
                .tls
                .as_ref()
                .ok_or_else(|| TdsError::Invalid("TLS requested but not configured".into()))?;
            let Transport::Plain(sock) = io else {
                return Err(TdsError::Invalid("unexpected transport state".into()));
            };
            let mut tls = identity.acceptor.accept(PreloginWrapper::new(sock)).await?;
            tls.get_mut().0.handshake_complete();
            debug!("TLS handshake done");
            io = Transport::Tls(Box::new(tls));
        } else if cfg.tls == TlsMode::Required {
            warn!("client did not start TLS although the server requires it");
            return Ok(None);
        }
    }

    let msg = match read_message(&mut io).await? {
        Some(m) => m,
        None => return Ok(None),
    };
    // Login-only encryption: LOGIN7 came through TLS; everything after it is plaintext.
    if answer == Encryption::Off {
        if let Transport::Tls(tls) = io {
            let (wrapper, _) = (*tls).into_inner();
            io = Transport::Plain(wrapper.into_inner());
            debug!("login-only encryption: back to plaintext");
        }
    }
    let mut conn = Conn {
        io: tokio::io::BufReader::with_capacity(16 * 1024, io),
        packet_size: DEFAULT_PACKET_SIZE,
        spid,
    };
    if msg.ty != PacketType::Login7 {
        return Err(TdsError::Invalid(format!(
            "expected LOGIN7, got packet type 0x{:02X}",
            msg.ty.as_u8()
        )));
    }
    let login = login::parse(&msg.data)?;
    debug!(?login, "LOGIN7");
    match check_login(&login, cfg) {
        Ok(()) => {}
        Err(errors) => {
            let mut w = TokenWriter::new();
            let legacy = login.tds_version < 0x7200_0000 && login.tds_version >= 0x7000_0000
                || login.tds_version < 0x0100_0000;
            for e in &errors {
                if legacy {
                    w.error_legacy(e);
                } else {
                    w.error(e);
                }
            }
            let mut bytes = w.into_bytes();
            if legacy {
                // DONE with a 4-byte row count, as pre-7.2 clients read it.
                bytes.extend_from_slice(&[0xFD, 0x02, 0x00, 0x00, 0x00, 0, 0, 0, 0]);
            } else {
                let mut w = TokenWriter::new();
                w.done(DoneKind::Done, DONE_ERROR, 0, 0);
                bytes.extend_from_slice(&w.into_bytes());
            }
            warn!(user = %login.username, reason = %errors.last().map(|e| e.message.as_str()).unwrap_or(""), "login refused");
            let _ = conn.send(&bytes).await;
            return Ok(None);
        }
    }

    let session = match shared.engine.session().await {
        Ok(s) => s,
        Err(e) => {
            let mut w = TokenWriter::new();
            w.error(&SqlError {
                number: 4060,
                class: 11,
                state: 1,
                message: e.message,
            });
            w.done(DoneKind::Done, DONE_ERROR, 0, 0);
            let _ = conn.send(&w.into_bytes()).await;
            return Ok(None);
        }
    };

    let requested = login.packet_size as usize;
    let packet_size = if requested == 0 {
        DEFAULT_PACKET_SIZE
    } else {
        requested.clamp(MIN_PACKET_SIZE, MAX_PACKET_SIZE)
    };
    let db = cfg.database.as_str();
    let mut w = TokenWriter::new();
    w.env_text(1, db, "master");
    w.info(5701, 0, &format!("Changed database context to '{db}'."));
    w.env_collation();
    w.env_text(2, "us_english", "");
    w.info(5703, 0, "Changed language setting to us_english.");
    w.login_ack(
        login.ack_version(),
        "Microsoft SQL Server",
        [
            SERVER_VERSION.0,
            SERVER_VERSION.1,
            (SERVER_VERSION.2 >> 8) as u8,
            SERVER_VERSION.2 as u8,
        ],
    );
    if login.feature_ext {
        w.feature_ext_ack_empty();
    }
    w.env_text(
        4,
        &packet_size.to_string(),
        &DEFAULT_PACKET_SIZE.to_string(),
    );
    w.done(DoneKind::Done, 0, 0, 0);
    conn.send(&w.into_bytes()).await?;
    conn.packet_size = packet_size;
    debug!(user = %login.username, app = %login.app_name, tds = %login.version_name(), packet_size, "login ok");
    Ok(Some((conn, session)))
}

fn login_error(number: i32, class: u8, message: &str) -> SqlError {
    SqlError {
        number,
        class,
        state: 1,
        message: message.to_string(),
    }
}

fn check_login(login: &Login7, cfg: &EmulatorConfig) -> Result<(), Vec<SqlError>> {
    if !login.version_supported() {
        return Err(vec![login_error(
            4002,
            16,
            &format!(
                "TDS version {} is not supported by mikro-emulator; use TDS 7.3 or 7.4 (FreeTDS: tds version = 7.4).",
                login.version_name()
            ),
        )]);
    }
    let failed = |user: &str| login_error(18456, 14, &format!("Login failed for user '{user}'."));
    if login.integrated_security && login.username.is_empty() {
        return Err(vec![login_error(
            18452,
            14,
            "Login failed. The login is from an untrusted domain and cannot be used with Integrated authentication.",
        )]);
    }
    if !login.username.eq_ignore_ascii_case(&cfg.user) || login.password != cfg.password {
        return Err(vec![failed(&login.username)]);
    }
    if !login.database.is_empty() && !login.database.eq_ignore_ascii_case(&cfg.database) {
        return Err(vec![
            login_error(
                4060,
                11,
                &format!(
                    "Cannot open database \"{}\" requested by the login. The login failed.",
                    login.database
                ),
            ),
            failed(&login.username),
        ]);
    }
    Ok(())
}

/// Per-connection protocol state beyond the engine session: prepared statements.
#[derive(Default)]
struct ConnState {
    prepared: HashMap<i32, Prepared>,
    next_handle: i32,
    stats: Arc<RpcStats>,
}

/// How many parameters RPC calls carried, and how many requests a transaction stayed open
/// across, over the server's life (every connection): tests assert that a client stays a margin
/// below SQL Server's 2,100 parameters, and that it does not hold a transaction open across
/// round trips (on SQL Server, readers of the rows it wrote wait that long).
#[derive(Debug, Default)]
pub struct RpcStats {
    calls: AtomicU64,
    max_params: AtomicUsize,
    max_tx_requests: AtomicUsize,
}

impl RpcStats {
    fn record(&self, params: usize) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.max_params.fetch_max(params, Ordering::Relaxed);
    }

    /// RPC calls received so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The most parameters one RPC call carried (sp_executesql's @stmt and @params included).
    pub fn max_params(&self) -> usize {
        self.max_params.load(Ordering::Relaxed)
    }

    /// The most requests (SQLBatch, RPC, Transaction Manager) one transaction stayed open
    /// across, counting the one that began it and the one that ended it; 0 while every
    /// transaction began and ended inside a single request.
    pub fn max_requests_per_transaction(&self) -> usize {
        self.max_tx_requests.load(Ordering::Relaxed)
    }

    fn record_transaction(&self, requests: usize) {
        self.max_tx_requests.fetch_max(requests, Ordering::Relaxed);
    }
}

struct Prepared {
    sql: String,
    declared: Vec<Declared>,
}

/// Handles one client message. `Ok(false)` ends the connection.
async fn handle_message(
    conn: &mut Conn,
    session: &mut Session,
    state: &mut ConnState,
    msg: Message,
) -> Result<bool, TdsError> {
    if msg.status & STATUS_IGNORE != 0 && msg.ty != PacketType::Attention {
        debug!("client cancelled the message (IGNORE bit): skipped");
        return Ok(true);
    }
    match msg.ty {
        PacketType::SqlBatch => {
            let mut r = Reader::new(&msg.data);
            let desc = read_all_headers(&mut r)?;
            check_descriptor(session, desc);
            let sql = utf16_to_string(r.bytes(r.remaining(), "SQL text")?);
            let span = info_span!("batch", len = sql.len());
            let mut out = Vec::new();
            async {
                debug!(sql = %truncate(&sql, 2000), "SQLBatch");
                session.execute(&sql, &[], &mut out).await;
            }
            .instrument(span)
            .await;
            let mut w = TokenWriter::new();
            encode_outputs(&mut w, &out, false);
            if !w.ends_with_done() {
                w.done(DoneKind::Done, 0, 0, 0);
            }
            let fatal = w.is_fatal();
            conn.send(&w.into_bytes()).await?;
            if fatal {
                warn!("severity 20+ error: closing the connection");
                return Ok(false);
            }
        }
        PacketType::Rpc => {
            let mut w = TokenWriter::new();
            match rpc::parse(&msg.data) {
                Ok(req) => {
                    check_descriptor(session, req.tx_descriptor);
                    for call in req.calls {
                        state.stats.record(call.params.len());
                        run_rpc(session, state, call, &mut w).await;
                    }
                }
                Err(e) => {
                    w.error(&SqlError::new(
                        8009,
                        format!("The incoming RPC request is malformed: {e}"),
                    ));
                    w.done(DoneKind::Proc, DONE_ERROR, 0, 0);
                }
            }
            if !w.ends_with_done() {
                w.done(DoneKind::Done, 0, 0, 0);
            }
            let fatal = w.is_fatal();
            conn.send(&w.into_bytes()).await?;
            if fatal {
                warn!("severity 20+ error: closing the connection");
                return Ok(false);
            }
        }
        PacketType::TransactionManager => {
            let mut w = TokenWriter::new();
            match transaction_manager(session, &msg.data).await {
                Ok(out) => {
                    let had_error = encode_outputs(&mut w, &out, false);
                    if !w.ends_with_done() {
                        w.done(DoneKind::Done, if had_error { DONE_ERROR } else { 0 }, 0, 0);
                    }
                }
                Err(e) => {
                    w.error(&e);
                    w.done(DoneKind::Done, DONE_ERROR, 0, 0);
                }
            }
            let fatal = w.is_fatal();
            conn.send(&w.into_bytes()).await?;
            if fatal {
                warn!("severity 20+ error: closing the connection");
                return Ok(false);
            }
        }
        PacketType::Attention => {
            debug!("Attention");
            session.attention().await;
            let mut w = TokenWriter::new();
            w.done(DoneKind::Done, DONE_ATTN, 0, 0);
            let fatal = w.is_fatal();
            conn.send(&w.into_bytes()).await?;
            if fatal {
                warn!("severity 20+ error: closing the connection");
                return Ok(false);
            }
        }
        other => {
            warn!(ty = other.as_u8(), "unsupported packet type");
            let mut w = TokenWriter::new();
            w.error(&SqlError::new(
                4002,
                format!(
                    "The incoming tabular data stream (TDS) packet type 0x{:02X} is not supported by mikro-emulator.",
                    other.as_u8()
                ),
            ));
            w.done(DoneKind::Done, DONE_ERROR, 0, 0);
            let fatal = w.is_fatal();
            conn.send(&w.into_bytes()).await?;
            if fatal {
                warn!("severity 20+ error: closing the connection");
                return Ok(false);
            }
            if matches!(other, PacketType::Login7 | PacketType::PreLogin) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn check_descriptor(session: &Session, desc: u64) {
    let current = session.transaction_descriptor();
    if desc != current {
        debug!(
            client = desc,
            server = current,
            "transaction descriptor differs"
        );
    }
}

/// Turns engine outputs into tokens. Inside an RPC statements end with DONEINPROC (DONE_MORE
/// always set), in a batch with DONE. Returns whether any error was written.
fn encode_outputs(w: &mut TokenWriter, outputs: &[Output], in_rpc: bool) -> bool {
    let kind = if in_rpc {
        DoneKind::InProc
    } else {
        DoneKind::Done
    };
    let more = if in_rpc { DONE_MORE } else { 0 };
    let mut pending_error = false;
    let mut any_error = false;
    let mut open_rows: Option<u64> = None;
    for o in outputs {
        match o {
            Output::Rows { columns, rows } => {
                if let Some(n) = open_rows.take() {
                    w.done(kind, DONE_COUNT | more, 0xC1, n);
                }
                w.col_metadata(columns);
                let mut n = 0u64;
                for row in rows {
                    match w.row(columns, row) {
                        Ok(()) => n += 1,
                        Err(e) => {
                            w.error(&e);
                            pending_error = true;
                            any_error = true;
                            break;
                        }
                    }
                }
                open_rows = Some(n);
            }
            Output::Done { rows } => {
                let cur_cmd = if open_rows.take().is_some() { 0xC1 } else { 0 };
                let mut status = more;
                if rows.is_some() {
                    status |= DONE_COUNT;
                }
                if pending_error {
                    status |= DONE_ERROR;
                }
                pending_error = false;
                w.done(kind, status, cur_cmd, rows.unwrap_or(0));
            }
            Output::Error(e) => {
                w.error(e);
                pending_error = true;
                any_error = true;
            }
            Output::Info { number, message } => w.info(*number, 0, message),
            Output::Tx(ev) => w.env_tx(*ev),
            Output::ReturnStatus(s) => w.return_status(*s),
        }
    }
    if let Some(n) = open_rows {
        let status = DONE_COUNT | more | if pending_error { DONE_ERROR } else { 0 };
        w.done(kind, status, 0xC1, n);
    } else if pending_error {
        w.done(kind, DONE_ERROR | more, 0, 0);
    }
    any_error
}

fn param_text(p: Option<&RpcParam>) -> Option<String> {
    match p.map(|p| &p.value) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

fn param_int(p: Option<&RpcParam>) -> Option<i32> {
    match p.map(|p| &p.value) {
        Some(Value::Int(i)) => i32::try_from(*i).ok(),
        _ => None,
    }
}

/// RETURNVALUE (0xAC) for an int OUTPUT parameter (the sp_prepare handle).
fn return_value_int(w: &mut TokenWriter, ordinal: u16, name: &str, v: i32) {
    let mut b = vec![0xAC];
    b.extend_from_slice(&ordinal.to_le_bytes());
    crate::tds::put_b_varchar(&mut b, name);
    b.push(0x01); // output parameter
    b.extend_from_slice(&0u32.to_le_bytes()); // UserType
    b.extend_from_slice(&0u16.to_le_bytes()); // Flags
    crate::tds::types::write_type_info(&mut b, &SqlType::Int);
    let _ = crate::tds::types::write_value(&mut b, &SqlType::Int, &Value::Int(v as i64));
    w.raw(&b);
}

/// SQL Server's limit on the parameters of one request.
pub const MAX_RPC_PARAMS: usize = 2100;

/// Error 8003, as SQL Server words it.
fn too_many_parameters() -> SqlError {
    SqlError::new(
        8003,
        format!("The incoming request has too many parameters. The server supports a maximum of {MAX_RPC_PARAMS} parameters. Reduce the number of parameters and resend the request."),
    )
}

/// Runs one RPC call and writes its tokens, ending with RETURNSTATUS + DONEPROC.
async fn run_rpc(session: &mut Session, state: &mut ConnState, call: RpcCall, w: &mut TokenWriter) {
    let id = call.proc_ref.known_id();
    let span = info_span!("rpc", proc = ?call.proc_ref);
    let mut out = Vec::new();
    let mut ret_handle: Option<(u16, String, i32)> = None;
    let mut return_status = 0;
    let result: Result<(), SqlError> = async {
        // SQL Server counts every parameter of the RPC call, sp_executesql's @stmt and @params
        // included, so 2,098 statement parameters is the most sp_executesql can bind.
        if call.params.len() > MAX_RPC_PARAMS {
            return Err(too_many_parameters());
        }
        match id {
            Some(10) => {
                let stmt = param_text(call.params.first()).ok_or_else(|| {
                    SqlError::new(
                        214,
                        "Procedure expects parameter '@statement' of type 'ntext/nchar/nvarchar'.",
                    )
                })?;
                let decl = match call.params.get(1) {
                    Some(p) => match &p.value {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        _ => {
                            return Err(SqlError::new(
                                214,
                                "Procedure expects parameter '@params' of type 'ntext/nchar/nvarchar'.",
                            ))
                        }
                    },
                    None => String::new(),
                };
                let declared = rpc::parse_declarations(&decl).map_err(|e| SqlError::syntax(e.to_string()))?;
                let values = call.params.get(2..).unwrap_or(&[]);
                let params = rpc::bind_params(&declared, values);
                tracing::trace!(?params, "sp_executesql parameters");
                debug!(sql = %truncate(&stmt, 2000), params = params.len(), "sp_executesql");
                session.execute(&stmt, &params, &mut out).await;
                Ok(())
            }
            Some(11) | Some(13) => {
                // sp_prepare(@handle OUT, @params, @stmt, @options) /
                // sp_prepexec(@handle OUT, @params, @stmt, values...)
                let decl = param_text(call.params.get(1)).unwrap_or_default();
                let stmt = param_text(call.params.get(2)).ok_or_else(|| {
                    SqlError::new(8179, "Could not find prepared statement text.")
                })?;
                let declared = rpc::parse_declarations(&decl).map_err(|e| SqlError::syntax(e.to_string()))?;
                state.next_handle += 1;
                let handle = state.next_handle;
                let name = call.params.first().map(|p| p.name.clone()).unwrap_or_default();
                ret_handle = Some((0, name, handle));
                if id == Some(13) {
                    let values = call.params.get(3..).unwrap_or(&[]);
                    let params = rpc::bind_params(&declared, values);
                    session.execute(&stmt, &params, &mut out).await;
                }
                state.prepared.insert(handle, Prepared { sql: stmt, declared });
                Ok(())
            }
            Some(12) => {
                let handle = param_int(call.params.first())
                    .ok_or_else(|| SqlError::new(8179, "Could not find prepared statement with handle 0."))?;
                let p = state.prepared.get(&handle).ok_or_else(|| {
                    SqlError::new(8179, format!("Could not find prepared statement with handle {handle}."))
                })?;
                let values = call.params.get(1..).unwrap_or(&[]);
                let params = rpc::bind_params(&p.declared, values);
                let sql = p.sql.clone();
                session.execute(&sql, &params, &mut out).await;
                Ok(())
            }
            Some(15) => {
                if let Some(h) = param_int(call.params.first()) {
                    state.prepared.remove(&h);
                }
                Ok(())
            }
            Some(other) if other != 10 && call_name(&call).is_none() => Err(SqlError::new(
                2812,
                format!("Could not find stored procedure with ProcID {other} (not supported by mikro-emulator)."),
            )),
            _ => {
                // Any other procedure by name: run it as EXEC with the parameters bound, so the
                // engine decides (sp_getapplock, sp_releaseapplock, …).
                let name = call_name(&call).unwrap_or_default();
                let mut params: Vec<Param> = Vec::new();
                let mut args = Vec::new();
                for (i, p) in call.params.iter().enumerate() {
                    let pname = if p.name.is_empty() {
                        format!("@__p{}", i + 1)
                    } else {
                        p.name.clone()
                    };
                    if p.name.is_empty() {
                        args.push(pname.clone());
                    } else {
                        args.push(format!("{pname} = {pname}"));
                    }
                    params.push(Param {
                        name: pname,
                        ty: crate::tds::types::wire_to_sql_type(&p.wire),
                        value: p.value.clone(),
                    });
                }
                let sql = format!("EXEC {name} {}", args.join(", "));
                session.execute(&sql, &params, &mut out).await;
                // The engine reports the procedure's return status itself.
                if out.iter().any(|o| matches!(o, Output::ReturnStatus(_))) {
                    return_status = i32::MIN;
                }
                Ok(())
            }
        }
    }
    .instrument(span)
    .await;
    let mut had_error = encode_outputs(w, &out, true);
    if let Err(e) = result {
        w.error(&e);
        had_error = true;
    }
    if return_status != i32::MIN {
        w.return_status(if had_error && id != Some(10) {
            1
        } else {
            return_status
        });
    }
    if let Some((ord, name, h)) = ret_handle {
        return_value_int(w, ord, &name, h);
    }
    w.done(DoneKind::Proc, if had_error { DONE_ERROR } else { 0 }, 0, 0);
}

fn call_name(call: &RpcCall) -> Option<String> {
    match &call.proc_ref {
        rpc::ProcRef::Name(n) => Some(n.clone()),
        rpc::ProcRef::Id(_) => None,
    }
}

/// Decodes and runs a Transaction Manager request.
async fn transaction_manager(session: &mut Session, data: &[u8]) -> Result<Vec<Output>, SqlError> {
    let malformed =
        |e: TdsError| SqlError::new(8009, format!("Malformed transaction manager request: {e}"));
    let mut r = Reader::new(data);
    let desc = read_all_headers(&mut r).map_err(malformed)?;
    check_descriptor(session, desc);
    let ty = r.u16_le("RequestType").map_err(malformed)?;
    let mut out = Vec::new();
    match ty {
        5 => {
            // TM_BEGIN_XACT: isolation level, name.
            let _iso = r.u8("IsolationLevel").map_err(malformed)?;
            let _name = r.b_varchar("Name").unwrap_or_default();
            debug!("TM_BEGIN_XACT");
            session.begin(&mut out).await;
        }
        7 | 8 => {
            // TM_COMMIT_XACT / TM_ROLLBACK_XACT: name, fBeginXact, [iso, name].
            let name = if r.is_empty() {
                String::new()
            } else {
                r.b_varchar("Name").map_err(malformed)?
            };
            let flags = if r.is_empty() { 0 } else { r.u8("Flags").map_err(malformed)? };
            let begin_new = flags & 0x01 != 0;
            debug!(tm = ty, begin_new, "TM commit/rollback");
            if ty == 8 && !name.is_empty() {
                // Rollback to a savepoint.
                let sql = format!("ROLLBACK TRANSACTION [{}]", name.replace(']', "]]"));
                session.execute(&sql, &[], &mut out).await;
            } else if ty == 7 {
                session.commit(begin_new, &mut out).await;
            } else {
                session.rollback(begin_new, &mut out).await;
            }
        }
        9 => {
            // TM_SAVE_XACT: name.
            let name = r.b_varchar("Name").map_err(malformed)?;
            let sql = format!("SAVE TRANSACTION [{}]", name.replace(']', "]]"));
            session.execute(&sql, &[], &mut out).await;
            // SAVE produces no result count.
            out.retain(|o| !matches!(o, Output::Done { .. }));
        }
        other => {
            return Err(SqlError::new(
                8522,
                format!("Transaction manager request type {other} (distributed transactions) is not supported by mikro-emulator."),
            ))
        }
    }
    // Transaction Manager responses carry ENVCHANGE + one DONE; drop the engine's DONEs.
    out.retain(|o| !matches!(o, Output::Done { .. }));
    Ok(out)
}
