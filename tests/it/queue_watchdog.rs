//! The systemd watchdog is fed by the worker loop's progress: a posting that wedges its thread
//! (so its timeout cannot fire) stops the pings; when it comes loose they resume. The pings are
//! read from a real `NOTIFY_SOCKET`, as systemd would. The scenario runs in a child process of
//! this test binary: `NOTIFY_SOCKET` is process-wide and no other test may feed or see it.

use crate::common;

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use mikro_sync::posting::{PostError, Posted};
use mikro_sync::queue::watchdog::spawn_systemd_watchdog_feeder;
use mikro_sync::queue::{Job, Metrics, Sink};

const T: Duration = Duration::from_secs(60);

/// Blocks its thread (not just its task) on the first posting until released.
#[derive(Clone)]
struct WedgedSink {
    release: Arc<Mutex<mpsc::Receiver<()>>>,
    entered: Arc<Mutex<bool>>,
}

impl Sink for WedgedSink {
    async fn post(&self, _job: &Job) -> Result<Posted, PostError> {
        let first = {
            let mut e = self.entered.lock().unwrap();
            !std::mem::replace(&mut *e, true)
        };
        if first {
            // A synchronous call that hangs (a blocking driver, a deadlock): bounded for the test.
            let _ = self
                .release
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(120));
        }
        Ok(posted("ST", 1))
    }
}

/// Records the arrival time of every WATCHDOG=1 datagram (its own thread, off the runtime).
fn record_pings(sock: UnixDatagram, stop: Arc<AtomicBool>) -> Arc<Mutex<Vec<Instant>>> {
    let pings = Arc::new(Mutex::new(Vec::new()));
    let p = pings.clone();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while !stop.load(Ordering::Relaxed) {
            if let Ok(len) = sock.recv(&mut buf) {
                if String::from_utf8_lossy(&buf[..len]).contains("WATCHDOG=1") {
                    p.lock().unwrap().push(Instant::now());
                }
            }
        }
    });
    pings
}

fn pings_since(pings: &Mutex<Vec<Instant>>, t: Instant) -> usize {
    pings.lock().unwrap().iter().filter(|p| **p >= t).count()
}

/// Waits (bounded, off the runtime) for a ping after `t`.
fn wait_ping_after(pings: &Mutex<Vec<Instant>>, t: Instant) -> bool {
    for _ in 0..600 {
        if pings_since(pings, t) > 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Set (with `NOTIFY_SOCKET`) only in the child that runs the scenario.
const CHILD_ENV: &str = "QUEUE_WATCHDOG_CHILD";

#[test]
fn the_watchdog_is_fed_by_the_loop_and_starves_on_a_wedged_posting() {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "queue_watchdog::watchdog_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env("NOTIFY_SOCKET", dir.path().join("notify.sock"))
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("spawn child");
    // Bounded: the scenario takes ~20 s.
    let mut status = None;
    for _ in 0..3000 {
        status = child.try_wait().unwrap();
        if status.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let out = std::fs::read_to_string(&out).unwrap_or_default();
    let err = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()) && out.contains("1 passed"),
        "the child scenario failed or did not run ({status:?}):\n{out}\n{err}"
    );
}

/// Child mode only (a no-op in a normal run): the scenario, with this process's `NOTIFY_SOCKET`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watchdog_child_entry() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let path = std::env::var_os("NOTIFY_SOCKET").expect("NOTIFY_SOCKET set by the parent");
    let sock = UnixDatagram::bind(&path).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let pings = record_pings(sock, stop.clone());

    // 1. The feeder alone: it pings while the loop counter grows, stops when it stands still
    //    for `stall`, resumes when it grows again.
    let m = Arc::new(Metrics::default());
    let feeder = spawn_systemd_watchdog_feeder(
        m.clone(),
        Duration::from_millis(50),
        Duration::from_millis(500),
    )
    .unwrap();
    let t0 = Instant::now();
    for _ in 0..10 {
        m.loop_turns.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(pings_since(&pings, t0) > 0, "pings while the loop turns");
    std::thread::sleep(Duration::from_millis(1000)); // no turns: past `stall`
    let quiet = Instant::now();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(pings_since(&pings, quiet), 0, "pings without loop turns");
    m.loop_turns.fetch_add(1, Ordering::Relaxed);
    assert!(
        wait_ping_after(&pings, Instant::now()),
        "pings resume with the loop"
    );
    feeder.stop();

    // 2. A real worker whose posting wedges its thread (the timeout cannot fire): the pings
    //    stop; when it comes loose they resume and the sale is posted once.
    let env = web_env(true).await;
    let c = env.client().await;
    let (tx, rx) = mpsc::channel();
    let sink = WedgedSink {
        release: Arc::new(Mutex::new(rx)),
        entered: Arc::new(Mutex::new(false)),
    };
    let m = Arc::new(Metrics::default());
    let mut opts = fast_opts();
    opts.metrics = m.clone();
    opts.posting_timeout = Duration::from_millis(200);
    opts.poll_interval = Duration::from_millis(200);
    let w = spawn_worker(&env.pool, &env.url, sink.clone(), opts);
    let feeder = spawn_systemd_watchdog_feeder(
        m.clone(),
        Duration::from_millis(100),
        Duration::from_secs(1),
    )
    .unwrap();
    wait_for("pings while healthy", T, || async {
        (pings_since(&pings, Instant::now() - Duration::from_millis(300)) > 0).then_some(())
    })
    .await;
    let s = insert_sale(&c, 1).await;
    // Observed off the runtime (the wedged thread may stall all of it).
    let entered = sink.entered.clone();
    let p = pings.clone();
    let (quiet, resumed) = tokio::task::spawn_blocking(move || {
        for _ in 0..1200 {
            if *entered.lock().unwrap() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Past posting_timeout + grace (5.2 s) and `stall` (1 s): no pings from here on.
        std::thread::sleep(Duration::from_millis(7500));
        let from = Instant::now();
        std::thread::sleep(Duration::from_secs(2));
        let quiet = pings_since(&p, from);
        tx.send(()).unwrap();
        (quiet, wait_ping_after(&p, Instant::now()))
    })
    .await
    .unwrap();
    assert_eq!(quiet, 0, "pings while the posting was wedged");
    assert!(resumed, "pings resume once the posting comes loose");
    wait_drained(&c, T).await;
    assert_eq!(queue_row(&c, s).await.unwrap().0, "completed");
    feeder.stop();
    stop.store(true, Ordering::Relaxed);
    w.stop().await;
}
