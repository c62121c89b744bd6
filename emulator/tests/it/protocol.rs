//! TDS protocol tests through tiberius 0.12 over TCP against the emulator, backed by a
//! throwaway PostgreSQL cluster (no mocks).
//!
//! Each test starts its own cluster and emulator so tests can run in parallel.

use mikro_emulator::pgcluster::PgCluster;
use mikro_emulator::{start, EmulatorConfig, EmulatorHandle, TlsMode};
use tiberius::{AuthMethod, Client, Config, EncryptionLevel};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

const USER: &str = "sa";
const PASSWORD: &str = "Gizli-Şifre_42";
const DB: &str = "MikroDB";

struct Env {
    _pg: PgCluster,
    emu: Option<EmulatorHandle>,
}

impl Env {
    fn addr(&self) -> std::net::SocketAddr {
        self.emu.as_ref().expect("emulator running").addr
    }
}

async fn env(tls: TlsMode) -> Env {
    let pg = PgCluster::start().await.expect("start PostgreSQL");
    pg.create_database("proto").await.expect("create database");
    let emu = start(EmulatorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        pg_url: pg.url("proto"),
        user: USER.into(),
        password: PASSWORD.into(),
        database: DB.into(),
        tls,
    })
    .await
    .expect("start emulator");
    Env {
        _pg: pg,
        emu: Some(emu),
    }
}

fn config(
    addr: std::net::SocketAddr,
    enc: EncryptionLevel,
    user: &str,
    password: &str,
    db: Option<&str>,
) -> Config {
    let mut c = Config::new();
    c.host(addr.ip().to_string());
    c.port(addr.port());
    c.authentication(AuthMethod::sql_server(user, password));
    c.encryption(enc);
    c.trust_cert();
    if let Some(db) = db {
        c.database(db);
    }
    c
}

async fn connect_with(c: Config) -> tiberius::Result<Client<Compat<TcpStream>>> {
    let tcp = TcpStream::connect(c.get_addr()).await?;
    tcp.set_nodelay(true)?;
    Client::connect(c, tcp.compat_write()).await
}

async fn connect(addr: std::net::SocketAddr) -> Client<Compat<TcpStream>> {
    connect_with(config(
        addr,
        EncryptionLevel::NotSupported,
        USER,
        PASSWORD,
        Some(DB),
    ))
    .await
    .expect("login")
}

fn server_error(e: tiberius::error::Error) -> (u32, u8, String) {
    match e {
        tiberius::error::Error::Server(t) => (t.code(), t.class(), t.message().to_string()),
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test]
async fn login_plaintext_ok_and_simple_select() {
    let env = env(TlsMode::Optional).await;
    let mut c = connect(env.addr()).await;
    let row = c
        .simple_query("SELECT 1 AS one")
        .await
        .expect("query")
        .into_row()
        .await
        .expect("row")
        .expect("one row");
    assert_eq!(row.columns()[0].name(), "one");
    drop(c);
    env.emu.unwrap().shutdown().await;
}

#[tokio::test]
async fn login_failures_carry_sql_server_numbers() {
    let env = env(TlsMode::Off).await;
    let e = connect_with(config(
        env.addr(),
        EncryptionLevel::NotSupported,
        USER,
        "wrong",
        Some(DB),
    ))
    .await
    .expect_err("wrong password must fail");
    let (code, class, msg) = server_error(e);
    assert_eq!(code, 18456);
    assert_eq!(class, 14);
    assert_eq!(msg, format!("Login failed for user '{USER}'."));

    let e = connect_with(config(
        env.addr(),
        EncryptionLevel::NotSupported,
        "nobody",
        PASSWORD,
        Some(DB),
    ))
    .await
    .expect_err("unknown user must fail");
    assert_eq!(server_error(e).0, 18456);

    let e = connect_with(config(
        env.addr(),
        EncryptionLevel::NotSupported,
        USER,
        PASSWORD,
        Some("OtherDB"),
    ))
    .await
    .expect_err("wrong database must fail");
    let (code, _, msg) = server_error(e);
    assert_eq!(code, 4060, "{msg}");

    // No database at all is fine, and the server is still healthy after the failures.
    let mut c = connect_with(config(
        env.addr(),
        EncryptionLevel::NotSupported,
        USER,
        PASSWORD,
        None,
    ))
    .await
    .expect("login without database");
    c.simple_query("SELECT 1")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
}

#[tokio::test]
async fn tls_full_and_login_only() {
    let env = env(TlsMode::Optional).await;
    // encrypt=true + TrustServerCertificate=true: the daemon's production setting.
    for enc in [
        EncryptionLevel::Required,
        EncryptionLevel::On,
        EncryptionLevel::Off,
    ] {
        let mut c = connect_with(config(env.addr(), enc, USER, PASSWORD, Some(DB)))
            .await
            .unwrap_or_else(|e| panic!("login with {enc:?}: {e}"));
        let rows = c
            .simple_query("SELECT 'x' AS a")
            .await
            .unwrap()
            .into_first_result()
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{enc:?}");
        // Wrong password over TLS is still 18456.
        let e = connect_with(config(env.addr(), enc, USER, "nope", Some(DB)))
            .await
            .expect_err("wrong password");
        assert_eq!(server_error(e).0, 18456);
    }
    // A plaintext client is still served when TLS is optional.
    connect(env.addr()).await;
}

/// Sends one raw TDS message and reads one raw response message (payload only).
async fn raw_exchange(tcp: &mut TcpStream, ty: u8, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    Ok(raw_exchange_packets(tcp, ty, payload).await?.0)
}

/// Like [`raw_exchange`], also returning the largest response packet seen (header included).
async fn raw_exchange_packets(
    tcp: &mut TcpStream,
    ty: u8,
    payload: &[u8],
) -> std::io::Result<(Vec<u8>, usize)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut largest = 0;
    let mut pkt = vec![ty, 0x01];
    pkt.extend_from_slice(&((payload.len() + 8) as u16).to_be_bytes());
    pkt.extend_from_slice(&[0, 0, 1, 0]);
    pkt.extend_from_slice(payload);
    tcp.write_all(&pkt).await?;
    let mut out = Vec::new();
    loop {
        let mut h = [0u8; 8];
        tcp.read_exact(&mut h).await?;
        let len = u16::from_be_bytes([h[2], h[3]]) as usize;
        largest = largest.max(len);
        let mut body = vec![0u8; len - 8];
        tcp.read_exact(&mut body).await?;
        out.extend_from_slice(&body);
        if h[1] & 1 != 0 {
            return Ok((out, largest));
        }
    }
}

/// A PRELOGIN with VERSION and ENCRYPTION options.
fn prelogin_payload(encryption: u8) -> Vec<u8> {
    let mut p = vec![0u8, 0, 11, 0, 6, 1, 0, 17, 0, 1, 0xFF];
    p.extend_from_slice(&[15, 0, 0, 0, 0, 0]);
    p.push(encryption);
    p
}

fn prelogin_encryption(resp: &[u8]) -> u8 {
    let mut i = 0;
    while resp[i] != 0xFF {
        if resp[i] == 1 {
            let off = u16::from_be_bytes([resp[i + 1], resp[i + 2]]) as usize;
            return resp[off];
        }
        i += 5;
    }
    panic!("no ENCRYPTION option in {resp:?}");
}

#[tokio::test]
async fn prelogin_encryption_answers_follow_the_mode() {
    use tokio::io::AsyncReadExt;
    // (server mode, client request, expected answer)
    let cases = [
        (TlsMode::Off, 1u8, 2u8),
        (TlsMode::Off, 2, 2),
        (TlsMode::Optional, 2, 2),
        (TlsMode::Optional, 0, 0),
        (TlsMode::Optional, 1, 1),
        (TlsMode::Required, 2, 3),
        (TlsMode::Required, 0, 3),
    ];
    let pg = PgCluster::start().await.expect("start PostgreSQL");
    pg.create_database("proto").await.unwrap();
    for (mode, req, want) in cases {
        let emu = start(EmulatorConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            pg_url: pg.url("proto"),
            user: USER.into(),
            password: PASSWORD.into(),
            database: DB.into(),
            tls: mode,
        })
        .await
        .unwrap();
        let mut tcp = TcpStream::connect(emu.addr).await.unwrap();
        let resp = raw_exchange(&mut tcp, 0x12, &prelogin_payload(req))
            .await
            .unwrap();
        assert_eq!(
            prelogin_encryption(&resp),
            want,
            "{mode:?} with client {req}"
        );
        if mode == TlsMode::Required {
            // A plaintext LOGIN7 is refused: the server closes the connection.
            use tokio::io::AsyncWriteExt;
            let mut pkt = vec![0x10, 0x01, 0, 16, 0, 0, 1, 0];
            pkt.extend_from_slice(&[0u8; 8]);
            tcp.write_all(&pkt).await.unwrap();
            let mut b = [0u8; 1];
            let n = tcp.read(&mut b).await.unwrap_or(0);
            assert_eq!(
                n, 0,
                "server must close a plaintext login when TLS is required"
            );
        }
        emu.shutdown().await;
    }
}

#[tokio::test]
async fn tls_required_serves_encrypting_clients() {
    let env = env(TlsMode::Required).await;
    let mut c = connect_with(config(
        env.addr(),
        EncryptionLevel::Required,
        USER,
        PASSWORD,
        Some(DB),
    ))
    .await
    .expect("encrypted login");
    c.simple_query("SELECT 1")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    assert!(env.emu.as_ref().unwrap().certificate_pem().is_some());
}

#[tokio::test]
async fn multi_packet_results_and_long_query_text() {
    let env = env(TlsMode::Optional).await;
    for enc in [EncryptionLevel::NotSupported, EncryptionLevel::Required] {
        let mut c = connect_with(config(env.addr(), enc, USER, PASSWORD, Some(DB)))
            .await
            .unwrap();
        // A query text of ~8 KB (UTF-16) spans two 4096-byte packets (a literal of at most
        // 4000 characters stays nvarchar(4000) on SQL Server too).
        let long = "Ş".repeat(3_990);
        let row = c
            .simple_query(format!("SELECT N'{long}' AS s"))
            .await
            .unwrap()
            .into_row()
            .await
            .unwrap()
            .unwrap();
        let s: &str = row.get(0).unwrap();
        assert_eq!(s.chars().count(), 3_990);
        assert_eq!(s, long);
    }

    // A row of ~24 KB: the result spans several packets.
    let mut c = connect(env.addr()).await;
    let cols: Vec<String> = (0..3)
        .map(|i| format!("N'{}' AS c{i}", "ğ".repeat(3_990)))
        .collect();
    let row = c
        .simple_query(format!("SELECT {}", cols.join(", ")))
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .unwrap();
    for i in 0..3 {
        let v: &str = row.get(i).unwrap();
        assert_eq!(v.chars().count(), 3_990);
    }
}

#[tokio::test]
async fn errors_are_reported_and_the_connection_survives() {
    let env = env(TlsMode::Off).await;
    let mut c = connect(env.addr()).await;
    let e = match c.simple_query("SELEC 1").await {
        Err(e) => e,
        Ok(stream) => stream.into_results().await.expect_err("syntax error"),
    };
    let (code, class, _) = server_error(e);
    assert_eq!(code, 102);
    assert_eq!(class, 16);
    // The connection is still usable.
    let row = c
        .simple_query("SELECT 7 AS n")
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap();
    assert!(row.is_some());
}

#[tokio::test]
async fn broken_clients_do_not_hurt_the_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = env(TlsMode::Optional).await;
    // Garbage instead of PRELOGIN.
    let mut tcp = TcpStream::connect(env.addr()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    // A truncated PRELOGIN option table.
    let mut tcp = TcpStream::connect(env.addr()).await.unwrap();
    let _ = raw_exchange(&mut tcp, 0x12, &[0, 0, 200, 0, 6]).await;
    // A packet header announcing a length below the header size.
    let mut tcp = TcpStream::connect(env.addr()).await.unwrap();
    tcp.write_all(&[0x12, 1, 0, 2, 0, 0, 0, 0]).await.unwrap();
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    // A client that disconnects in the middle of a packet.
    let mut tcp = TcpStream::connect(env.addr()).await.unwrap();
    tcp.write_all(&[0x12, 1, 0, 100, 0, 0, 0, 0, 1, 2])
        .await
        .unwrap();
    drop(tcp);
    // The server still serves a well-behaved client.
    let mut c = connect(env.addr()).await;
    c.simple_query("SELECT 1")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
}

#[tokio::test]
async fn graceful_shutdown_closes_sessions_and_stops_accepting() {
    let mut env = env(TlsMode::Off).await;
    let addr = env.addr();
    let mut c = connect(addr).await;
    c.simple_query("SELECT 1")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    let handle = env.emu.take().unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(30), handle.shutdown())
        .await
        .expect("shutdown must not hang on an idle connection");
    // The idle connection was closed by the server.
    assert!(c.simple_query("SELECT 1").await.is_err());
    // Nothing listens any more.
    assert!(TcpStream::connect(addr).await.is_err());
}

/// A minimal LOGIN7 (TDS 7.4, SQL authentication) for raw-protocol tests.
fn login7_payload(user: &str, password: &str, db: &str) -> Vec<u8> {
    login7_payload_sized(user, password, db, 4096)
}

/// LOGIN7 asking for a packet size.
fn login7_payload_sized(user: &str, password: &str, db: &str, packet_size: u32) -> Vec<u8> {
    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
    }
    let mut pw = utf16(password);
    for b in pw.iter_mut() {
        *b = b.rotate_left(4) ^ 0xA5;
    }
    let fields: Vec<Vec<u8>> = vec![
        utf16("host"),
        utf16(user),
        pw,
        utf16("raw-test"),
        utf16("server"),
        vec![],
        utf16("raw"),
        vec![],
        utf16(db),
    ];
    let fixed = 36 + 9 * 4 + 6 + 4 * 3 + 4;
    let mut head = Vec::new();
    head.extend_from_slice(&0x7400_0004u32.to_le_bytes());
    head.extend_from_slice(&packet_size.to_le_bytes());
    head.extend_from_slice(&[0u8; 12]); // prog ver, pid, connection id
    head.extend_from_slice(&[0xE0, 0x03, 0, 0]); // option flags
    head.extend_from_slice(&[0u8; 8]); // time zone, LCID
    let mut offsets = Vec::new();
    let mut data = Vec::new();
    for f in &fields {
        offsets.extend_from_slice(&((fixed + data.len()) as u16).to_le_bytes());
        offsets.extend_from_slice(&((f.len() / 2) as u16).to_le_bytes());
        data.extend_from_slice(f);
    }
    offsets.extend_from_slice(&[0u8; 6]); // client id
    for _ in 0..3 {
        // SSPI, attach db file, change password: empty
        offsets.extend_from_slice(&((fixed + data.len()) as u16).to_le_bytes());
        offsets.extend_from_slice(&0u16.to_le_bytes());
    }
    offsets.extend_from_slice(&0u32.to_le_bytes()); // cbSSPILong
    let total = 4 + head.len() + offsets.len() + data.len();
    assert_eq!(4 + head.len() + offsets.len(), fixed);
    let mut out = (total as u32).to_le_bytes().to_vec();
    out.extend(head);
    out.extend(offsets);
    out.extend(data);
    out
}

/// What [`scan_tokens`] found: ENVCHANGE (type, new value), DONE-like (token, status), ERROR
/// numbers.
type Scanned = (Vec<(u8, Vec<u8>)>, Vec<(u8, u16)>, Vec<u32>);

/// Walks a token stream and returns ENVCHANGEs, DONE statuses and error numbers.
fn scan_tokens(b: &[u8]) -> Scanned {
    let mut envs = Vec::new();
    let mut dones = Vec::new();
    let mut errors = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let t = b[i];
        i += 1;
        match t {
            0xE3 | 0xAA | 0xAB | 0xAD => {
                let len = u16::from_le_bytes([b[i], b[i + 1]]) as usize;
                let body = &b[i + 2..i + 2 + len];
                if t == 0xE3 {
                    // Text values (database, language, charset, packet size) count UTF-16
                    // characters; binary ones (collation, descriptors) count bytes.
                    let unit = if body[0] <= 4 { 2 } else { 1 };
                    let n = body[1] as usize * unit;
                    envs.push((body[0], body[2..2 + n].to_vec()));
                }
                if t == 0xAA {
                    errors.push(u32::from_le_bytes([body[0], body[1], body[2], body[3]]));
                }
                i += 2 + len;
            }
            0xFD..=0xFF => {
                dones.push((t, u16::from_le_bytes([b[i], b[i + 1]])));
                i += 12;
            }
            0x79 => i += 4,
            0xAE => {
                while b[i] != 0xFF {
                    let len = u32::from_le_bytes([b[i + 1], b[i + 2], b[i + 3], b[i + 4]]);
                    i += 5 + len as usize;
                }
                i += 1;
            }
            other => panic!("unexpected token 0x{other:02X} at {i}"),
        }
    }
    (envs, dones, errors)
}

fn all_headers(desc: [u8; 8]) -> Vec<u8> {
    let mut h = 22u32.to_le_bytes().to_vec();
    h.extend_from_slice(&18u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&desc);
    h.extend_from_slice(&1u32.to_le_bytes());
    h
}

#[tokio::test]
async fn transaction_manager_requests_and_attention() {
    let env = env(TlsMode::Off).await;
    let mut tcp = TcpStream::connect(env.addr()).await.unwrap();
    let resp = raw_exchange(&mut tcp, 0x12, &prelogin_payload(2))
        .await
        .unwrap();
    assert_eq!(prelogin_encryption(&resp), 2);
    let resp = raw_exchange(&mut tcp, 0x10, &login7_payload(USER, PASSWORD, DB))
        .await
        .unwrap();
    // LOGINACK with TDS 7.4, ENVCHANGE database/collation/language/packet size, final DONE.
    let ack = resp.iter().position(|&b| b == 0xAD).expect("LOGINACK");
    assert_eq!(&resp[ack + 4..ack + 8], &[0x74, 0, 0, 4]);
    let (envs, dones, errors) = scan_tokens(&resp);
    assert!(errors.is_empty());
    let env_types: Vec<u8> = envs.iter().map(|e| e.0).collect();
    assert_eq!(env_types, vec![1, 7, 2, 4]);
    assert_eq!(
        envs[1].1,
        vec![0x1F, 0x04, 0xD0, 0x00, 0x00],
        "Turkish_CI_AS"
    );
    assert_eq!(dones, vec![(0xFD, 0)]);

    // TM_BEGIN_XACT → ENVCHANGE 8 with an 8-byte descriptor.
    let mut req = all_headers([0; 8]);
    req.extend_from_slice(&5u16.to_le_bytes());
    req.extend_from_slice(&[0, 0]); // isolation level, empty name
    let resp = raw_exchange(&mut tcp, 0x0E, &req).await.unwrap();
    let (envs, dones, errors) = scan_tokens(&resp);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(envs.len(), 1);
    assert_eq!(envs[0].0, 8);
    assert_eq!(envs[0].1.len(), 8);
    assert_eq!(dones, vec![(0xFD, 0)]);
    let mut desc = [0u8; 8];
    desc.copy_from_slice(&envs[0].1);

    // TM_COMMIT_XACT with fBeginXact → ENVCHANGE 9 (commit) then 8 (the new transaction).
    let mut req = all_headers(desc);
    req.extend_from_slice(&7u16.to_le_bytes());
    req.extend_from_slice(&[0, 1, 0, 0]); // name, fBeginXact, new isolation, new name
    let resp = raw_exchange(&mut tcp, 0x0E, &req).await.unwrap();
    let (envs, _, errors) = scan_tokens(&resp);
    assert!(errors.is_empty(), "{errors:?}");
    let env_types: Vec<u8> = envs.iter().map(|e| e.0).collect();
    assert_eq!(env_types, vec![9, 8]);
    let mut desc2 = [0u8; 8];
    desc2.copy_from_slice(&envs[1].1);
    assert_ne!(desc, desc2, "a new transaction gets a new descriptor");

    // TM_ROLLBACK_XACT without a new transaction → ENVCHANGE 10.
    let mut req = all_headers(desc2);
    req.extend_from_slice(&8u16.to_le_bytes());
    req.extend_from_slice(&[0, 0]);
    let resp = raw_exchange(&mut tcp, 0x0E, &req).await.unwrap();
    let (envs, _, _) = scan_tokens(&resp);
    assert_eq!(envs.iter().map(|e| e.0).collect::<Vec<_>>(), vec![10]);

    // Attention → DONE with DONE_ATTN.
    let resp = raw_exchange(&mut tcp, 0x06, &[]).await.unwrap();
    let (_, dones, _) = scan_tokens(&resp);
    assert_eq!(dones, vec![(0xFD, 0x20)]);

    // A SQL batch still works afterwards and ends with a final DONE (no DONE_MORE).
    let mut req = all_headers([0; 8]);
    req.extend(
        "SELECT 1 AS a; SELECT 2 AS b"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes()),
    );
    let resp = raw_exchange(&mut tcp, 0x01, &req).await.unwrap();
    assert_eq!(resp[resp.len() - 13], 0xFD);
    let last_status = u16::from_le_bytes([resp[resp.len() - 12], resp[resp.len() - 11]]);
    assert_eq!(
        last_status & 0x01,
        0,
        "the last DONE must not carry DONE_MORE"
    );
}

#[tokio::test]
async fn a_lost_backend_connection_ends_the_session_not_the_server() {
    let env = env(TlsMode::Off).await;
    let mut c = connect(env.addr()).await;
    c.simple_query("SELECT 1")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    // Kill the session's PostgreSQL backend behind its back.
    env._pg
        .execute(
            "postgres",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = 'proto' AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();
    // The engine reports the dead backend (the first request may still see PostgreSQL's own
    // termination notice as an ordinary error); once a severity 20+ error is sent, SQL Server
    // semantics apply: the connection is closed, so the next request fails on the transport.
    // (`SELECT 1 + 1`: a query PostgreSQL must run; `SELECT 1` is answered by the engine.)
    let mut saw_fatal = false;
    let mut closed = false;
    for _ in 0..4 {
        let r = match c.simple_query("SELECT 1 + 1").await {
            Err(e) => Err(e),
            Ok(s) => s.into_results().await.map(|_| ()),
        };
        match r {
            Ok(()) => panic!("a query on a killed backend cannot succeed"),
            Err(tiberius::error::Error::Server(t)) => {
                assert!(
                    !saw_fatal,
                    "the connection stayed open after a severity 20+ error"
                );
                saw_fatal = t.class() >= 20;
            }
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(
        saw_fatal && closed,
        "a lost backend must end the TDS connection"
    );
    // A new connection gets a new session.
    let mut c = connect(env.addr()).await;
    c.simple_query("SELECT 1")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
}

fn rpc_param(name: &str, status: u8, type_and_value: &[u8]) -> Vec<u8> {
    let mut p = vec![name.encode_utf16().count() as u8];
    p.extend(name.encode_utf16().flat_map(|u| u.to_le_bytes()));
    p.push(status);
    p.extend_from_slice(type_and_value);
    p
}

fn intn(v: Option<i32>) -> Vec<u8> {
    match v {
        Some(v) => {
            let mut b = vec![0x26, 4, 4];
            b.extend_from_slice(&v.to_le_bytes());
            b
        }
        None => vec![0x26, 4, 0],
    }
}

fn nvarchar(s: &str) -> Vec<u8> {
    let data: Vec<u8> = s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    let mut b = vec![0xE7, 0x40, 0x1F, 0, 0, 0, 0, 0];
    b.extend_from_slice(&(data.len() as u16).to_le_bytes());
    b.extend(data);
    b
}

fn rpc_by_id(proc_id: u16, params: &[Vec<u8>]) -> Vec<u8> {
    let mut m = all_headers([0; 8]);
    m.extend_from_slice(&0xFFFFu16.to_le_bytes());
    m.extend_from_slice(&proc_id.to_le_bytes());
    m.extend_from_slice(&0u16.to_le_bytes());
    for p in params {
        m.extend_from_slice(p);
    }
    m
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn prepared_statements_by_proc_id_and_sp_executesql_by_name() {
    let env = env(TlsMode::Off).await;
    let mut tcp = TcpStream::connect(env.addr()).await.unwrap();
    raw_exchange(&mut tcp, 0x12, &prelogin_payload(2))
        .await
        .unwrap();
    raw_exchange(&mut tcp, 0x10, &login7_payload(USER, PASSWORD, DB))
        .await
        .unwrap();

    // sp_prepexec(@handle OUTPUT, @params, @stmt, @P1 = 5): a RETURNVALUE with the handle
    // and the row.
    let req = rpc_by_id(
        13,
        &[
            rpc_param("@handle", 1, &intn(None)),
            rpc_param("@params", 0, &nvarchar("@P1 int")),
            rpc_param("@stmt", 0, &nvarchar("SELECT @P1 AS v")),
            rpc_param("@P1", 0, &intn(Some(5))),
        ],
    );
    let resp = raw_exchange(&mut tcp, 0x03, &req).await.unwrap();
    assert!(
        contains(&resp, &[0xD1, 4, 5, 0, 0, 0]),
        "row with 5: {resp:?}"
    );
    let rv = resp.iter().position(|&b| b == 0xAC).expect("RETURNVALUE");
    // 0xAC, ordinal (2), name "@handle" (1 + 14), status, user type (4), flags (2), INTN 4.
    let handle_at = rv + 1 + 2 + 15 + 1 + 4 + 2 + 2;
    assert_eq!(resp[handle_at], 4);
    let handle = i32::from_le_bytes(resp[handle_at + 1..handle_at + 5].try_into().unwrap());
    assert_eq!(resp[resp.len() - 13], 0xFE, "ends with DONEPROC");

    // sp_execute(handle, @P1 = 6).
    let req = rpc_by_id(
        12,
        &[
            rpc_param("", 0, &intn(Some(handle))),
            rpc_param("@P1", 0, &intn(Some(6))),
        ],
    );
    let resp = raw_exchange(&mut tcp, 0x03, &req).await.unwrap();
    assert!(
        contains(&resp, &[0xD1, 4, 6, 0, 0, 0]),
        "row with 6: {resp:?}"
    );

    // sp_unprepare, then sp_execute of the old handle is error 8179.
    let resp = raw_exchange(
        &mut tcp,
        0x03,
        &rpc_by_id(15, &[rpc_param("", 0, &intn(Some(handle)))]),
    )
    .await
    .unwrap();
    assert_eq!(resp[resp.len() - 13], 0xFE);
    let resp = raw_exchange(
        &mut tcp,
        0x03,
        &rpc_by_id(12, &[rpc_param("", 0, &intn(Some(handle)))]),
    )
    .await
    .unwrap();
    assert!(contains(&resp, &8179i32.to_le_bytes()), "error 8179");

    // sp_executesql called by name, positional parameters.
    let mut m = all_headers([0; 8]);
    let name = "sp_executesql";
    m.extend_from_slice(&(name.len() as u16).to_le_bytes());
    m.extend(name.encode_utf16().flat_map(|u| u.to_le_bytes()));
    m.extend_from_slice(&0u16.to_le_bytes());
    m.extend(rpc_param("", 0, &nvarchar("SELECT @P1 AS v")));
    m.extend(rpc_param("", 0, &nvarchar("@P1 int")));
    m.extend(rpc_param("", 0, &intn(Some(7))));
    let resp = raw_exchange(&mut tcp, 0x03, &m).await.unwrap();
    assert!(
        contains(&resp, &[0xD1, 4, 7, 0, 0, 0]),
        "row with 7: {resp:?}"
    );
}

#[tokio::test]
async fn negotiated_packet_size_is_honoured() {
    let env = env(TlsMode::Off).await;
    for (asked, granted) in [
        (512u32, 512usize),
        (100, 512),
        (8192, 8192),
        (60_000, 32767),
    ] {
        let mut tcp = TcpStream::connect(env.addr()).await.unwrap();
        raw_exchange(&mut tcp, 0x12, &prelogin_payload(2))
            .await
            .unwrap();
        let resp = raw_exchange(
            &mut tcp,
            0x10,
            &login7_payload_sized(USER, PASSWORD, DB, asked),
        )
        .await
        .unwrap();
        let (envs, _, _) = scan_tokens(&resp);
        let size = envs
            .iter()
            .find(|e| e.0 == 4)
            .expect("ENVCHANGE packet size");
        let text: String =
            char::decode_utf16(size.1.chunks(2).map(|c| u16::from_le_bytes([c[0], c[1]])))
                .map(|c| c.unwrap())
                .collect();
        assert_eq!(text, granted.to_string(), "asked {asked}");
        // A ~40 KB result comes back in packets no larger than the granted size.
        let mut req = all_headers([0; 8]);
        let sql = format!("SELECT N'{}' AS a", "x".repeat(3_000));
        let sql = format!(
            "{sql}, {}",
            (0..6)
                .map(|i| format!("N'{}' AS c{i}", "y".repeat(3_000)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        req.extend(sql.encode_utf16().flat_map(|u| u.to_le_bytes()));
        let (resp, largest) = raw_exchange_packets(&mut tcp, 0x01, &req).await.unwrap();
        assert!(resp.len() > 40_000);
        assert!(
            largest <= granted,
            "packet of {largest} bytes with size {granted}"
        );
        assert!(largest > granted / 2, "the granted size is used");
    }
}

/// SQL Server refuses an RPC with more than 2,100 parameters (sp_executesql's @stmt and @params
/// count), error 8003, and the connection stays usable; 2,098 statement parameters pass.
#[tokio::test]
async fn more_than_2100_rpc_parameters_is_error_8003() {
    let env = env(TlsMode::Off).await;
    let mut c = connect(env.addr()).await;
    let run = |n: usize| {
        let names: Vec<String> = (1..=n).map(|i| format!("@P{i}")).collect();
        format!(
            "SELECT CASE WHEN 1 IN ({}) THEN 1 ELSE 0 END",
            names.join(", ")
        )
    };
    let sql = run(2098);
    let mut q = tiberius::Query::new(sql.as_str());
    for i in 0..2098i32 {
        q.bind(i);
    }
    let n: Option<i32> = q
        .query(&mut c)
        .await
        .expect("2,098 parameters")
        .into_row()
        .await
        .unwrap()
        .unwrap()
        .get(0);
    assert_eq!(n, Some(1));

    let sql = run(2099);
    let mut q = tiberius::Query::new(sql.as_str());
    for i in 0..2099i32 {
        q.bind(i);
    }
    let err = match q.query(&mut c).await {
        Ok(_) => panic!("2,101 RPC parameters were accepted"),
        Err(e) => e,
    };
    let (number, class, message) = server_error(err);
    assert_eq!((number, class), (8003, 16), "{message}");
    assert!(message.contains("maximum of 2100 parameters"), "{message}");

    let row = c
        .simple_query("SELECT 7")
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.get::<i32, _>(0), Some(7));
}

/// The two server modes of issue 19 as a client sees them: a server that refuses encryption
/// (`TlsMode::Off`, PRELOGIN ENCRYPT_NOT_SUP, like an old SQL Server without a certificate) and
/// one that requires it (`TlsMode::Required`, ENCRYPT_REQ, "Force Encryption" on).
#[tokio::test]
async fn servers_that_refuse_or_require_encryption() {
    let off = env(TlsMode::Off).await;
    // Only a plaintext client (ADO encrypt=DANGER_PLAINTEXT) logs in. tiberius with
    // encrypt=true refuses, and with encrypt=false it still starts a TLS handshake for the login
    // after ENCRYPT_NOT_SUP, which the server drops: an EOF during the TLS handshake ("unexpected
    // EOF" from OpenSSL, tiberius' TLS backend), the error operators of old SQL Servers report.
    for enc in [EncryptionLevel::Required, EncryptionLevel::Off] {
        let e = connect_with(config(off.addr(), enc, USER, PASSWORD, Some(DB)))
            .await
            .err()
            .map(|e| e.to_string());
        let Some(e) = e else {
            panic!("{enc:?} logged in to a server without TLS");
        };
        if enc == EncryptionLevel::Off {
            assert!(e.contains("TLS") && e.contains("unexpected EOF"), "{e}");
        }
    }
    let mut c = connect_with(config(
        off.addr(),
        EncryptionLevel::NotSupported,
        USER,
        PASSWORD,
        Some(DB),
    ))
    .await
    .expect("plaintext login");
    c.simple_query("SELECT 1")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();

    let req = env(TlsMode::Required).await;
    // ENCRYPT_REQ makes tiberius encrypt whatever it was configured with (even
    // DANGER_PLAINTEXT), so every level is served — over TLS; a client that really sends a
    // plaintext LOGIN7 is dropped (prelogin_encryption_answers_follow_the_mode).
    for enc in [
        EncryptionLevel::NotSupported,
        EncryptionLevel::Off,
        EncryptionLevel::On,
        EncryptionLevel::Required,
    ] {
        let mut c = connect_with(config(req.addr(), enc, USER, PASSWORD, Some(DB)))
            .await
            .unwrap_or_else(|e| panic!("{enc:?} against a server requiring TLS: {e}"));
        c.simple_query("SELECT 1")
            .await
            .unwrap()
            .into_results()
            .await
            .unwrap();
    }
}
