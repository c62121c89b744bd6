//! The backoff schedule and give-up rules of `RetryPolicy` (pure; the persisted side is in
//! queue_worker.rs).

use std::time::Duration;

use mikro_sync::posting::PostError;
use mikro_sync::queue::{Decision, RetryPolicy};

fn no_jitter() -> RetryPolicy {
    RetryPolicy {
        initial_interval: Duration::from_secs(1),
        multiplier: 2.0,
        max_interval: Duration::from_secs(60),
        randomization_factor: 0.0,
        transient_max_total: Duration::from_secs(3600),
        data_max_attempts: 3,
        settle_window: Duration::from_secs(60),
        settle_max_interval: Duration::from_secs(10),
    }
}

#[test]
fn exponential_schedule_without_jitter() {
    let p = no_jitter();
    let got: Vec<u64> = (1..=9)
        .map(|n| p.delay(n, p.max_interval).as_secs())
        .collect();
    assert_eq!(got, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
    // Huge attempt numbers saturate at the cap instead of overflowing.
    assert_eq!(p.delay(10_000, p.max_interval), Duration::from_secs(60));
}

#[test]
fn jitter_stays_within_its_band_and_varies() {
    let mut p = no_jitter();
    p.randomization_factor = 0.5;
    for n in 1..=6 {
        let nominal = p.nominal_delay(n, p.max_interval).as_secs_f64();
        let samples: Vec<f64> = (0..200)
            .map(|_| p.delay(n, p.max_interval).as_secs_f64())
            .collect();
        for s in &samples {
            assert!(
                *s >= nominal * 0.5 - 1e-9 && *s <= nominal * 1.5 + 1e-9,
                "attempt {n}: {s} vs {nominal}"
            );
        }
        let min = samples.iter().cloned().fold(f64::MAX, f64::min);
        let max = samples.iter().cloned().fold(0.0, f64::max);
        assert!(
            max - min > nominal * 0.1,
            "jitter spreads retries (attempt {n})"
        );
    }
}

#[test]
fn transient_retries_until_the_total_time_runs_out() {
    let p = no_jitter();
    let e = PostError::Transient("timeout".into());
    assert_eq!(
        p.decide(&e, 1, Duration::ZERO),
        Decision::Retry {
            delay: Duration::from_secs(1)
        }
    );
    assert_eq!(
        p.decide(&e, 50, Duration::from_secs(100)),
        Decision::Retry {
            delay: Duration::from_secs(60)
        }
    );
    match p.decide(&e, 80, Duration::from_secs(3590)) {
        Decision::Fail { message } => {
            assert!(message.contains("gave up after 80 attempts"), "{message}");
            assert!(message.contains("timeout"), "{message}");
        }
        d => panic!("expected fail, got {d:?}"),
    }
}

#[test]
fn data_errors_get_a_few_attempts_then_fail_with_the_message() {
    let p = no_jitter();
    let e =
        PostError::Data("customer 120.01.999 has no mapping: add a row to int_kodmap_cari".into());
    assert!(matches!(
        p.decide(&e, 1, Duration::ZERO),
        Decision::Retry { .. }
    ));
    assert!(matches!(
        p.decide(&e, 2, Duration::ZERO),
        Decision::Retry { .. }
    ));
    assert_eq!(
        p.decide(&e, 3, Duration::ZERO),
        Decision::Fail {
            message: "customer 120.01.999 has no mapping: add a row to int_kodmap_cari".into()
        }
    );
}

#[test]
fn not_ready_waits_within_the_settle_window_then_fails() {
    let p = no_jitter();
    let e = PostError::NotReady("sale has no lines".into());
    // Short, capped delays while settling.
    assert_eq!(
        p.decide(&e, 1, Duration::ZERO),
        Decision::Retry {
            delay: Duration::from_secs(1)
        }
    );
    assert_eq!(
        p.decide(&e, 8, Duration::from_secs(20)),
        Decision::Retry {
            delay: Duration::from_secs(10)
        }
    );
    // Never sleeps past the window's end: the last try is at the end.
    assert_eq!(
        p.decide(&e, 8, Duration::from_secs(57)),
        Decision::Retry {
            delay: Duration::from_secs(3)
        }
    );
    match p.decide(&e, 9, Duration::from_secs(60)) {
        Decision::Fail { message } => assert!(message.contains("no lines"), "{message}"),
        d => panic!("expected fail, got {d:?}"),
    }
}

/// The production policy's 10-minute cap holds for every attempt, jitter included (the
/// `backoff` crate jittered after capping: up to 12.5 minutes), and jitter still spreads the
/// capped delays below it.
#[test]
fn the_cap_holds_with_jitter() {
    let p = RetryPolicy::default();
    let cap = p.max_interval;
    assert_eq!(cap, Duration::from_secs(600));
    for n in 1..=40 {
        let samples: Vec<Duration> = (0..500).map(|_| p.delay(n, cap)).collect();
        for d in &samples {
            assert!(*d <= cap, "attempt {n}: {d:?} exceeds the cap {cap:?}");
        }
        if p.nominal_delay(n, cap) == cap {
            let min = samples.iter().min().unwrap();
            assert!(*min >= cap.mul_f64(0.75), "attempt {n}: {min:?}");
            assert!(*min < cap.mul_f64(0.9), "capped delays are still jittered");
        }
    }
    // A smaller cap (the settle window's) holds too.
    let small = Duration::from_secs(10);
    for n in 1..=40 {
        assert!(p.delay(n, small) <= small);
    }
}
