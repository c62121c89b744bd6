//! The systemd watchdog, fed by the worker loop's progress.
//!
//! Why not a timer of its own: a separate task that pings systemd keeps pinging while the worker
//! loop is wedged, so systemd never restarts a daemon that stopped posting. Here the ping is
//! sent only while [`Metrics::loop_turns`] keeps growing. The loop turns at least every few
//! seconds (poll, rescue and lease ticks), each of its waits on the network is bounded, and it
//! does not count a turn while a posting runs past its timeout. The feeder runs on its own OS
//! thread, not on the runtime: a call that blocks a runtime thread (a blocking driver call, a
//! deadlock) can stall the whole runtime, and the feeder must notice that rather than stall
//! with it. So a loop that makes no progress for `stall` stops the pings, and systemd restarts
//! the service `WatchdogSec` after the last one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Metrics;

/// The running feeder; [`WatchdogFeeder::stop`] ends it.
pub struct WatchdogFeeder {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WatchdogFeeder {
    /// Stops feeding and waits for the thread (at most one `every` step).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for WatchdogFeeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Sends `WATCHDOG=1` (to `$NOTIFY_SOCKET`) every `every` while the worker loop made progress
/// within `stall`. Logs once when it stops feeding, and once when it resumes.
pub fn spawn_systemd_watchdog_feeder(
    metrics: Arc<Metrics>,
    every: Duration,
    stall: Duration,
) -> std::io::Result<WatchdogFeeder> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let every = every.max(Duration::from_millis(10));
    let thread =
        std::thread::Builder::new()
            .name("mikro-sync watchdog".into())
            .spawn(move || {
                let mut last_turns = Metrics::get(&metrics.loop_turns);
                let mut last_change = Instant::now();
                let mut starving = false;
                while !flag.load(Ordering::Relaxed) {
                    let turns = Metrics::get(&metrics.loop_turns);
                    if turns != last_turns {
                        last_turns = turns;
                        last_change = Instant::now();
                    }
                    let still = last_change.elapsed();
                    if still <= stall {
                        if starving {
                            starving = false;
                            tracing::info!(
                                "worker loop progresses again; feeding the systemd watchdog"
                            );
                        }
                        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                    } else if !starving {
                        starving = true;
                        tracing::error!(stalled_s = still.as_secs(),
                        "the worker loop made no progress (a posting stuck past its timeout, or \
                         the runtime blocked); no longer feeding the systemd watchdog, so \
                         systemd restarts the service");
                    }
                    std::thread::sleep(every);
                }
            })?;
    Ok(WatchdogFeeder {
        stop,
        thread: Some(thread),
    })
}
