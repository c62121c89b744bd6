//! The long fault-injection suite: `cargo run --release --example chaos [-- SCALE [NAME]]` runs the
//! scenarios of `tests/chaos/chaos_support.rs` at full size (SCALE 1.0: 200 documents, 200 cut
//! offsets, the ERP down 60 s, kill -9 × 20, …; 0.1 for a quick look; NAME runs only the scenarios
//! whose name contains it) and prints a table: documents,
//! faults injected, what the books check saw (exactly once, gap-free numbers, nothing left open or
//! failed: any violation panics, so a printed row means all held), recovery time and its bound.

#[path = "../tests/it/common.rs"]
mod common;

#[path = "../tests/chaos/chaos_support.rs"]
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
    // Optional second argument: run only the scenarios whose name contains it.
    let only = std::env::args().nth(2).unwrap_or_default().to_lowercase();
    let n = |full: f64| ((full * scale).round() as usize).max(2);
    let secs = |full: f64| Duration::from_secs_f64((full * scale).max(1.0));
    let want = |name: &str| only.is_empty() || name.to_lowercase().contains(&only);
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    let mut run = async |name: &str, f: tokio::task::JoinHandle<Outcome>| match f.await {
        Ok(o) => {
            o.print();
            rows.push(o);
        }
        // One broken scenario still leaves the others' rows; the run exits non-zero at the end.
        Err(e) => {
            let msg = match e.try_into_panic() {
                Ok(p) => p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default(),
                Err(e) => e.to_string(),
            };
            println!("chaos: {name} FAILED: {msg}");
            failed.push(format!("{name}: {msg}"));
        }
    };
    if want("ERP blackholed mid-posting") {
        run(
            "ERP blackholed mid-posting",
            tokio::spawn(blackhole_erp_mid_posting(n(200.0), secs(20.0))),
        )
        .await;
    }
    if want("ERP connection cut at byte offsets") {
        run(
            "ERP connection cut at byte offsets",
            tokio::spawn(cut_erp_at_offsets(n(200.0))),
        )
        .await;
    }
    if want("ERP down") {
        run("ERP down", tokio::spawn(erp_down(n(200.0), secs(60.0)))).await;
    }
    if want("web PostgreSQL restart") {
        run(
            "web PostgreSQL restart",
            tokio::spawn(web_restart(n(200.0), secs(10.0))),
        )
        .await;
    }
    if want("4 workers, ERP connections reset") {
        run(
            "4 workers, ERP connections reset",
            tokio::spawn(four_workers_with_resets(
                n(400.0),
                Duration::from_millis(500),
            )),
        )
        .await;
    }
    if want("kill -9 while busy") {
        run(
            "kill -9 while busy",
            tokio::spawn(kill9_while_busy(n(400.0), n(20.0), || {
                let mut cmd = std::process::Command::new(std::env::current_exe().expect("exe"));
                cmd.arg("child");
                cmd
            })),
        )
        .await;
    }
    if want("LISTEN connection blackholed") {
        run(
            "LISTEN connection blackholed",
            tokio::spawn(blackhole_listen(n(100.0), secs(30.0))),
        )
        .await;
    }
    if want("panicking sink") {
        run("panicking sink", tokio::spawn(panicking_sink(n(100.0)))).await;
    }
    // A Markdown table: it goes into docs/benchmarks.md as printed.
    println!();
    println!(
        "| scenario | docs | faults | in Mikro exactly once | numbers unique, gap-free | left pending/processing | failed | recovery | bound | notes |"
    );
    println!("|---|---:|---:|---:|---|---:|---:|---:|---:|---|");
    for r in &rows {
        let b = &r.books;
        println!(
            "| {} | {} | {} | {}/{} | {} numbers in {} series | {} | {} | {:.1} s | {} s | {} |",
            r.scenario,
            r.documents,
            r.faults,
            b.exactly_once,
            b.documents,
            b.numbers,
            b.series,
            b.open,
            b.failed,
            r.recovery.as_secs_f64(),
            r.bound.as_secs(),
            r.notes
        );
    }
    if !failed.is_empty() {
        eprintln!(
            "{} scenario(s) failed:\n{}",
            failed.len(),
            failed.join("\n")
        );
        std::process::exit(1);
    }
}
