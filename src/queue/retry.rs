//! The retry policy: what to do with a document whose posting failed, and when to try again.
//!
//! The delay of attempt `n` (1-based: `retry_count` after the failed attempt) is computed here,
//! by [`RetryPolicy::delay`]: nominal `initial * multiplier^(n-1)` capped at `max_interval`,
//! drawn uniformly from `[nominal * (1 - f), min(nominal * (1 + f), cap)]` with
//! `f = randomization_factor` (jitter, so a burst of failures does not retry in lock-step). The
//! cap is a hard bound: jitter only ever shortens a capped delay. The time is persisted in
//! `sync_queue.next_attempt_at`, so a restart keeps the schedule.
//!
//! Why no crate: the schedule is a function of the persisted attempt number, not a stateful
//! iterator, which is what retry crates (`backon`, the unmaintained `backoff`) offer; `backoff`
//! also jittered after capping, so its 10-minute cap was exceeded by up to 25 %.
//!
//! The error class decides how long to keep trying:
//! * [`PostError::Transient`] (connection lost, timeout, deadlock 1205, lock timeout): until
//!   `transient_max_total` has passed since the first attempt of this retry window;
//! * [`PostError::Data`] (missing mapping, validation): `data_max_attempts` attempts in all;
//! * [`PostError::NotReady`] (a sale header committed before its lines): short backoff within
//!   `settle_window`, then failed with the posting's message ("no lines …").

use std::time::Duration;

use crate::config::WorkerSettings;
use crate::posting::PostError;

/// Backoff and give-up settings. `Default` is the production policy.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Delay after the first failed attempt.
    pub initial_interval: Duration,
    /// Growth factor per attempt.
    pub multiplier: f64,
    /// Upper bound of the nominal delay.
    pub max_interval: Duration,
    /// Jitter: the delay is drawn from `[d*(1-f), d*(1+f)]`. 0 makes it deterministic.
    pub randomization_factor: f64,
    /// Transient failures keep retrying until this much time passed since the first attempt.
    pub transient_max_total: Duration,
    /// Data errors: attempts in all before the row ends `failed`.
    pub data_max_attempts: u32,
    /// Not-ready documents (no lines yet) wait at most this long from the first attempt.
    pub settle_window: Duration,
    /// Delay cap while waiting for a document to settle (it is expected within seconds).
    pub settle_max_interval: Duration,
}

impl Default for RetryPolicy {
    /// The policy of the default configuration.
    fn default() -> Self {
        RetryPolicy::from_settings(&WorkerSettings::default())
    }
}

impl RetryPolicy {
    /// The policy the worker settings configure; growth, jitter and the settle cap are not
    /// settings.
    pub fn from_settings(s: &WorkerSettings) -> RetryPolicy {
        RetryPolicy {
            initial_interval: s.backoff_initial,
            multiplier: 2.0,
            max_interval: s.backoff_max,
            randomization_factor: 0.25,
            transient_max_total: s.transient_retry_for,
            data_max_attempts: s.max_data_attempts,
            settle_window: s.settle_window,
            settle_max_interval: Duration::from_secs(10),
        }
    }
}

/// What to do with a failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Back to `pending`, due after `delay`.
    Retry {
        /// Time until the next attempt.
        delay: Duration,
    },
    /// End as `failed` with this operator-facing message.
    Fail {
        /// Stored in `sync_queue.error_message`.
        message: String,
    },
}

impl RetryPolicy {
    /// The nominal (un-jittered) delay after attempt `attempt` (1-based), capped at `cap`.
    pub fn nominal_delay(&self, attempt: u32, cap: Duration) -> Duration {
        let exp = attempt.saturating_sub(1).min(63) as i32;
        let secs = self.initial_interval.as_secs_f64() * self.multiplier.powi(exp);
        let cap = cap.min(self.max_interval);
        if !secs.is_finite() || secs >= cap.as_secs_f64() {
            cap
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The jittered delay after attempt `attempt`, never above `cap` (nor `max_interval`).
    pub fn delay(&self, attempt: u32, cap: Duration) -> Duration {
        let nominal = self.nominal_delay(attempt, cap).as_secs_f64();
        let cap = cap.min(self.max_interval).as_secs_f64();
        let f = if self.randomization_factor.is_finite() {
            self.randomization_factor.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let lo = (nominal * (1.0 - f)).min(cap);
        let hi = (nominal * (1.0 + f)).min(cap);
        let secs = lo + (hi - lo) * rand::random::<f64>();
        Duration::from_secs_f64(secs.clamp(0.0, cap))
    }

    /// Decides about a failed attempt. `attempt` = attempts made so far including this one
    /// (`retry_count`); `elapsed` = time since the first attempt of the current retry window.
    pub fn decide(&self, err: &PostError, attempt: u32, elapsed: Duration) -> Decision {
        match err {
            PostError::Transient(msg) => {
                let delay = self.delay(attempt, self.max_interval);
                if elapsed + delay > self.transient_max_total {
                    Decision::Fail {
                        message: format!(
                            "gave up after {attempt} attempts over {}: {msg} (fix the cause, then \
                             set status = 'pending' to retry)",
                            human(elapsed)
                        ),
                    }
                } else {
                    Decision::Retry { delay }
                }
            }
            PostError::Data(msg) => {
                if attempt >= self.data_max_attempts {
                    Decision::Fail {
                        message: msg.clone(),
                    }
                } else {
                    Decision::Retry {
                        delay: self.delay(attempt, self.max_interval),
                    }
                }
            }
            PostError::NotReady(msg) => {
                let delay = self.delay(attempt, self.settle_max_interval);
                if elapsed >= self.settle_window {
                    Decision::Fail {
                        message: format!("{msg} (still so after {})", human(elapsed)),
                    }
                } else {
                    // Never sleep past the end of the window: the last try is at its end.
                    let left = self.settle_window - elapsed;
                    Decision::Retry {
                        delay: delay.min(left),
                    }
                }
            }
        }
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
