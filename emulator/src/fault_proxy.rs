//! A fault-injection TCP proxy for tests and benchmarks: it forwards loopback TCP to a target
//! and, changed at run time, delays each chunk (per direction), holds the connection set-up,
//! blackholes (stops forwarding without closing), resets connections, cuts a connection after
//! N bytes, and refuses new connections.
//!
//! Delays are applied per chunk on arrival, not in series: a chunk read at `t` is written at
//! `t + delay`, so pipelined traffic keeps flowing as on a long link (what an RTT simulation
//! needs), and [`FaultProxy::set_rtt`] also holds the set-up one RTT as a TCP handshake would.
//! Blackholed data is kept and delivered in order once the blackhole is lifted (a healed
//! partition); a reset, a cut or a refusal closes with RST (`SO_LINGER` 0), as a crashed peer or
//! a firewall would.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

/// The faults in force; every field applies at once to new chunks and new connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Added to each chunk from the client to the target.
    pub delay_up: Duration,
    /// Added to each chunk from the target to the client.
    pub delay_down: Duration,
    /// How long a new connection is held before anything is forwarded.
    pub setup_delay: Duration,
    /// Nothing is forwarded in either direction; connections stay open.
    pub blackhole: bool,
    /// New connections are reset at once.
    pub refuse: bool,
    /// New connections are reset after this many bytes (both directions together, counted
    /// from the connection's start); `None` = never.
    pub cut_after: Option<u64>,
}

struct Shared {
    target: Mutex<SocketAddr>,
    faults: watch::Sender<Faults>,
    /// Bumped to reset every open connection.
    reset: watch::Sender<u64>,
    accepted: AtomicU64,
    forwarded: AtomicU64,
    open: AtomicU64,
    /// Client turns: chunks from a client that follow an answer (or open the connection).
    turns: AtomicU64,
}

/// A running proxy; dropping it stops accepting (open connections end with their peers).
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        // Open connections are reset too, so nothing outlives the proxy.
        self.shared.reset.send_modify(|g| *g += 1);
    }
}

impl FaultProxy {
    /// Listens on an ephemeral loopback port and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target: Mutex::new(target),
            faults: watch::channel(Faults::default()).0,
            reset: watch::channel(0).0,
            accepted: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            open: AtomicU64::new(0),
            turns: AtomicU64::new(0),
        });
        let s = shared.clone();
        let accept_task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    // Out of descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                s.accepted.fetch_add(1, Ordering::Relaxed);
                let faults = s.faults.borrow().clone();
                if faults.refuse {
                    let _ = client.set_zero_linger();
                    drop(client);
                    continue;
                }
                let s = s.clone();
                tokio::spawn(async move { serve(client, s, faults).await });
            }
        });
        Ok(FaultProxy {
            addr,
            shared,
            accept_task,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Points new connections at another target (e.g. a restarted server on a new port).
    pub fn set_target(&self, target: SocketAddr) {
        if let Ok(mut t) = self.shared.target.lock() {
            *t = target;
        }
    }

    /// The faults now in force.
    pub fn faults(&self) -> Faults {
        self.shared.faults.borrow().clone()
    }

    /// Replaces all faults at once.
    pub fn set_faults(&self, f: Faults) {
        self.shared.faults.send_replace(f);
    }

    /// Delays each chunk by `up` (client → target) and `down` (target → client).
    pub fn set_delay(&self, up: Duration, down: Duration) {
        self.shared.faults.send_modify(|f| {
            f.delay_up = up;
            f.delay_down = down;
        });
    }

    /// A link with round-trip time `rtt`: half of it each way, and new connections held one RTT
    /// (the TCP handshake).
    pub fn set_rtt(&self, rtt: Duration) {
        self.shared.faults.send_modify(|f| {
            f.delay_up = rtt / 2;
            f.delay_down = rtt / 2;
            f.setup_delay = rtt;
        });
    }

    /// Stops (true) or resumes (false) forwarding on every connection, open and new, without
    /// closing any.
    pub fn blackhole(&self, on: bool) {
        self.shared.faults.send_modify(|f| f.blackhole = on);
    }

    /// Resets new connections at once (true) or accepts them again (false).
    pub fn refuse(&self, on: bool) {
        self.shared.faults.send_modify(|f| f.refuse = on);
    }

    /// Resets each new connection after `n` bytes (both directions); `None` lifts it.
    pub fn cut_after(&self, n: Option<u64>) {
        self.shared.faults.send_modify(|f| f.cut_after = n);
    }

    /// Resets every open connection now (new ones are accepted as the faults say).
    pub fn reset_all(&self) {
        self.shared.reset.send_modify(|g| *g += 1);
    }

    /// Lifts every fault.
    pub fn heal(&self) {
        self.set_faults(Faults::default());
    }

    /// Connections accepted so far (refused ones included).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Connections now being forwarded.
    pub fn open_connections(&self) -> u64 {
        self.shared.open.load(Ordering::Relaxed)
    }

    /// Bytes written to either side so far.
    pub fn bytes_forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::Relaxed)
    }

    /// Round trips the clients started so far, over all connections: a chunk from a client
    /// counts when the target answered something since that client's previous chunk (or when it
    /// is the connection's first), so a pipelined batch of statements counts once.
    pub fn client_turns(&self) -> u64 {
        self.shared.turns.load(Ordering::Relaxed)
    }
}

/// Bytes one connection may still forward before it is cut.
struct Budget {
    left: Mutex<Option<u64>>,
    exhausted: Notify,
}

impl Budget {
    /// How many of `want` bytes may go; notifies the connection once nothing is left.
    fn take(&self, want: usize) -> usize {
        let Ok(mut left) = self.left.lock() else {
            return want;
        };
        match left.as_mut() {
            None => want,
            Some(l) => {
                let n = (*l).min(want as u64);
                *l -= n;
                if *l == 0 {
                    self.exhausted.notify_one();
                }
                n as usize
            }
        }
    }
}

struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve(client: TcpStream, shared: Arc<Shared>, faults: Faults) {
    shared.open.fetch_add(1, Ordering::Relaxed);
    let _guard = OpenGuard(shared.clone());
    let mut reset_rx = shared.reset.subscribe();
    reset_rx.borrow_and_update();
    if !faults.setup_delay.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep(faults.setup_delay) => {}
            _ = reset_rx.changed() => { let _ = client.set_zero_linger(); return; }
        }
    }
    let target = match shared.target.lock() {
        Ok(t) => *t,
        Err(_) => return,
    };
    let server =
        match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(target)).await {
            Ok(Ok(s)) => s,
            _ => {
                // The target is down: the client sees what it would see connecting directly.
                let _ = client.set_zero_linger();
                return;
            }
        };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let budget = Budget {
        left: Mutex::new(faults.cut_after),
        exhausted: Notify::new(),
    };
    if faults.cut_after == Some(0) {
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
        return;
    }
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    // True when the target spoke last (or nothing was said yet): the client's next chunk is a
    // new turn.
    let answered = AtomicBool::new(true);
    let reset = {
        let up = pump(&mut cr, &mut sw, &shared, &budget, &answered, true);
        let down = pump(&mut sr, &mut cw, &shared, &budget, &answered, false);
        tokio::select! {
            _ = async { tokio::join!(up, down) } => false,
            _ = reset_rx.changed() => true,
            _ = budget.exhausted.notified() => true,
        }
    };
    if reset {
        // A dropped write half would send FIN first; forgotten, the close is a bare RST.
        let _ = cr.as_ref().set_zero_linger();
        let _ = sr.as_ref().set_zero_linger();
        cw.forget();
        sw.forget();
    }
}

/// Forwards one direction: a reader stamps each chunk with its due time, a writer waits for it
/// (and for the blackhole to lift) before writing, so delays overlap like on a real link.
async fn pump(
    src: &mut OwnedReadHalf,
    dst: &mut OwnedWriteHalf,
    shared: &Shared,
    budget: &Budget,
    answered: &AtomicBool,
    up: bool,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let mut faults_rx = shared.faults.subscribe();
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match src.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    // Up: a turn if the target answered since; down: the next up chunk is one.
                    if answered.swap(!up, Ordering::Relaxed) && up {
                        shared.turns.fetch_add(1, Ordering::Relaxed);
                    }
                    let f = shared.faults.borrow();
                    let delay = if up { f.delay_up } else { f.delay_down };
                    drop(f);
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        // Dropping `tx` tells the writer to pass the EOF on once the queue is written.
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            // Only when due in the future: tokio's timer rounds up to its next millisecond tick,
            // so sleeping until "now" would add up to a millisecond to every chunk of an
            // undelayed link (a loopback run would measure the timer, not the daemon).
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            while faults_rx.borrow_and_update().blackhole {
                if faults_rx.changed().await.is_err() {
                    return;
                }
            }
            let n = budget.take(chunk.len());
            if n > 0 {
                if dst.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
                shared.forwarded.fetch_add(n as u64, Ordering::Relaxed);
            }
            if n < chunk.len() {
                // The cut: the connection task resets both sides.
                std::future::pending::<()>().await;
            }
        }
        let _ = dst.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server: writes back whatever it reads, until EOF.
    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    const BOUND: Duration = Duration::from_secs(10);

    async fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        s.write_all(msg).await?;
        let mut out = vec![0u8; msg.len()];
        tokio::time::timeout(BOUND, s.read_exact(&mut out))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        Ok(out)
    }

    #[tokio::test]
    async fn forwards_both_ways() {
        let p = FaultProxy::start(echo_server().await).await.unwrap();
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        let msg = "hello şt İST".as_bytes();
        assert_eq!(roundtrip(&mut s, msg).await.unwrap(), msg);
        assert_eq!(p.accepted(), 1);
        assert_eq!(p.bytes_forwarded(), 2 * msg.len() as u64);
        assert_eq!(p.client_turns(), 1);
        roundtrip(&mut s, b"again").await.unwrap();
        assert_eq!(p.client_turns(), 2, "one turn per request answered");
    }

    #[tokio::test]
    async fn delay_applies_per_direction_and_to_the_setup() {
        let p = FaultProxy::start(echo_server().await).await.unwrap();
        p.set_rtt(Duration::from_millis(200));
        let t0 = std::time::Instant::now();
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        roundtrip(&mut s, b"x").await.unwrap();
        // Set-up (one RTT) + 100 ms up + 100 ms down.
        assert!(
            t0.elapsed() >= Duration::from_millis(400),
            "{:?}",
            t0.elapsed()
        );
        p.set_delay(Duration::ZERO, Duration::from_millis(150));
        let t1 = std::time::Instant::now();
        roundtrip(&mut s, b"y").await.unwrap();
        assert!(
            t1.elapsed() >= Duration::from_millis(150),
            "{:?}",
            t1.elapsed()
        );
    }

    #[tokio::test]
    async fn blackhole_holds_data_without_closing_and_heals() {
        let p = FaultProxy::start(echo_server().await).await.unwrap();
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        roundtrip(&mut s, b"before").await.unwrap();
        p.blackhole(true);
        s.write_all(b"during").await.unwrap();
        let mut buf = [0u8; 6];
        let r = tokio::time::timeout(Duration::from_millis(300), s.read_exact(&mut buf)).await;
        assert!(r.is_err(), "nothing may come through a blackhole");
        assert_eq!(p.open_connections(), 1, "the connection stays open");
        p.blackhole(false);
        tokio::time::timeout(BOUND, s.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"during");
    }

    #[tokio::test]
    async fn reset_all_resets_open_connections() {
        let p = FaultProxy::start(echo_server().await).await.unwrap();
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        roundtrip(&mut s, b"a").await.unwrap();
        p.reset_all();
        let mut buf = [0u8; 1];
        let r = tokio::time::timeout(BOUND, s.read(&mut buf)).await.unwrap();
        match r {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
            Ok(n) => panic!("expected a reset, read {n} bytes"),
        }
        // New connections still work.
        let mut s2 = TcpStream::connect(p.addr()).await.unwrap();
        roundtrip(&mut s2, b"b").await.unwrap();
    }

    #[tokio::test]
    async fn cut_after_n_bytes() {
        let p = FaultProxy::start(echo_server().await).await.unwrap();
        p.cut_after(Some(7)); // "abcde" up (5) + "ab" down (2)
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        s.write_all(b"abcde").await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        let end = loop {
            match tokio::time::timeout(BOUND, s.read(&mut buf)).await.unwrap() {
                Ok(0) => break None,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break Some(e.kind()),
            }
        };
        assert_eq!(got, b"ab", "exactly 7 bytes forwarded in all");
        assert_eq!(end, Some(std::io::ErrorKind::ConnectionReset));
        assert_eq!(p.bytes_forwarded(), 7);
    }

    #[tokio::test]
    async fn refuse_resets_new_connections_only() {
        let p = FaultProxy::start(echo_server().await).await.unwrap();
        let mut old = TcpStream::connect(p.addr()).await.unwrap();
        roundtrip(&mut old, b"a").await.unwrap();
        p.refuse(true);
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        let r = roundtrip(&mut s, b"x").await;
        assert!(r.is_err(), "a refused connection carries nothing");
        roundtrip(&mut old, b"still").await.unwrap();
        p.refuse(false);
        let mut s = TcpStream::connect(p.addr()).await.unwrap();
        roundtrip(&mut s, b"again").await.unwrap();
    }
}
