//! The long fault-injection suite: `cargo run --release --example chaos [-- SCALE]` runs the
//! scenarios of `tests/chaos_support` at full size (SCALE 1.0: 200 documents, 200 cut offsets,
//! the ERP down 60 s, kill -9 × 20, …; 0.1 for a quick look) and prints a table: documents,
//! faults injected, recovery time and its bound. Every scenario asserts the books (exactly once,
//! gap-free numbers, nothing left open or failed) and panics otherwise.

#[path = "../tests/common/mod.rs"]
mod common;

#[path = "../tests/chaos_support/mod.rs"]
mod chaos_support;

use std::time::Duration;

use chaos_support::*;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let arg = std::env::args().nth(1).unwrap_or_default();
    if arg == "child" {
        // kill -9 scenario: this process is the worker that gets killed.
        child_worker().await;
        return;
    }
    let scale: f64 = arg.parse().unwrap_or(1.0);
    let n = |full: f64| ((full * scale).round() as usize).max(2);
    let secs = |full: f64| Duration::from_secs_f64((full * scale).max(1.0));
    let mut rows = Vec::new();
    let mut push = |o: Outcome| {
        o.print();
        rows.push(o);
    };
    push(blackhole_erp_mid_posting(n(200.0), secs(20.0)).await);
    push(cut_erp_at_offsets(n(200.0)).await);
    push(erp_down(n(200.0), secs(60.0)).await);
    push(web_restart(n(200.0), secs(10.0)).await);
    push(four_workers_with_resets(n(400.0), Duration::from_millis(500)).await);
    push(
        kill9_while_busy(n(400.0), n(20.0), || {
            let mut cmd = std::process::Command::new(std::env::current_exe().expect("exe"));
            cmd.arg("child");
            cmd
        })
        .await,
    );
    push(blackhole_listen(n(100.0), secs(30.0)).await);
    push(panicking_sink(n(100.0)).await);
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
}
