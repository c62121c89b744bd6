//! The long fault-injection suite: `cargo run --release --example chaos [-- SCALE]` runs the
//! scenarios of `tests/chaos_support` at full size (SCALE 1.0: 200 cut offsets, the ERP down
//! 60 s, …; 0.1 for a quick look) and prints a table: documents, faults injected, recovery time
//! and its bound. Every scenario asserts the books (exactly once, gap-free numbers, nothing left
//! open or failed) and panics otherwise.

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "../tests/chaos_support/mod.rs"]
mod chaos_support;

use std::time::Duration;

use chaos_support::*;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let scale: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let n = |full: f64| ((full * scale).round() as usize).max(1);
    let secs = |full: f64| Duration::from_secs_f64((full * scale).max(1.0));
    let mut rows = Vec::new();
    rows.push(blackhole_erp_mid_posting(n(200.0), secs(20.0)).await);
    rows.last().map(Outcome::print);
    rows.push(cut_erp_at_offsets(n(200.0)).await);
    rows.last().map(Outcome::print);
    rows.push(erp_down(n(200.0), secs(60.0)).await);
    rows.last().map(Outcome::print);
    println!();
    println!(
        "{:<36} {:>6} {:>7} {:>14} {:>8}  notes",
        "scenario", "docs", "faults", "recovery (ms)", "bound"
    );
    for r in &rows {
        println!(
            "{:<36} {:>6} {:>7} {:>14.1} {:>7}s  {}",
            r.scenario,
            r.documents,
            r.faults,
            r.recovery.as_secs_f64() * 1000.0,
            r.bound.as_secs(),
            r.notes
        );
    }
    for (name, why) in PENDING {
        println!(
            "{name:<36} {:>6} {:>7} {:>14} {:>8}  pending: {why}",
            "—", "—", "—", "—"
        );
    }
}

/// Scenarios of issue 16 not run here yet, and why.
const PENDING: &[(&str, &str)] = &[
    (
        "LISTEN connection blackholed",
        "needs the listener timeouts (queue-liveness) on main",
    ),
    (
        "panicking sink",
        "needs the panic release (queue-liveness) on main",
    ),
];
