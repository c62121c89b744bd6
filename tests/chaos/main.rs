//! The fault-injection suite, short versions (the long ones: `cargo run --release --example
//! chaos`). A fault proxy sits between the worker's ERP pool and the emulator; each scenario
//! checks the books afterwards (see `chaos_support`). Plus the ERP down/up log lines: one WARN
//! when connections start failing, one INFO when they work again, not one per document.
//!
//! Its own test binary: the scenarios' short ERP statement bound is process-wide (the last pool
//! built sets it), and the tests in `tests/it` must neither get it nor reset it mid-scenario.

mod chaos_support;
#[path = "../it/common.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaos_support::*;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_blackhole_erp_mid_posting() {
    blackhole_erp_mid_posting(16, Duration::from_secs(2))
        .await
        .print();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_cut_erp_connection_at_byte_offsets() {
    cut_erp_at_offsets(12).await.print();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_erp_down_for_a_while() {
    erp_down(16, Duration::from_secs(5)).await.print();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_web_postgres_restart() {
    web_restart(12, Duration::from_secs(3)).await.print();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_four_workers_with_erp_resets() {
    four_workers_with_resets(40, Duration::from_millis(700))
        .await
        .print();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_panicking_sink() {
    panicking_sink(12).await.print();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_blackhole_listen_connection() {
    blackhole_listen(24, Duration::from_secs(5)).await.print();
}

/// Child mode only (a no-op in a normal run): the worker `chaos_kill_9_while_busy` kills.
#[tokio::test]
async fn chaos_child_worker_entry() {
    child_worker().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_kill_9_while_busy() {
    kill9_while_busy(60, 3, || {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "chaos_child_worker_entry",
            "--nocapture",
            "--test-threads=1",
        ]);
        cmd
    })
    .await
    .print();
}

/// A `MakeWriter` collecting every formatted line.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

impl Lines {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// current_thread: the thread-local subscriber then sees the pool's connection tasks too.
#[tokio::test(flavor = "current_thread")]
async fn erp_down_logs_one_warn_with_the_cause_and_one_info_when_back() {
    let ce = chaos_env(2).await;
    let lines = Lines::default();
    let sub = tracing_subscriber::fmt()
        .with_writer(lines.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _g = tracing::subscriber::set_default(sub);

    // Up: a connection works.
    drop(ce.erp.get().await.expect("ERP up"));
    ce.proxy.refuse(true);
    ce.proxy.reset_all();
    // Five documents' worth of attempts while it is down: every error names the server and the
    // cause (bb8 alone said "Timed out in bb8").
    let gets = futures::future::join_all((0..5).map(|_| ce.erp.get())).await;
    for g in gets {
        let e = match g {
            Err(e) => e.to_string(),
            Ok(_) => panic!("no connection while the ERP is down"),
        };
        assert!(e.contains(&format!("127.0.0.1:{}", ce.proxy.port())), "{e}");
        assert!(e.contains("unreachable"), "{e}");
        assert!(!e.contains("Timed out in bb8"), "{e}");
    }
    assert!(ce.erp.health().is_down());
    // Documents arriving during the outage are retried without a WARN each.
    let c = connect(&ce.env.url).await;
    let mut opts = fast_opts();
    opts.concurrency = 2;
    let w = spawn_worker(&ce.env.pool, &ce.env.url, ce.sink(), opts);
    let ids = ce.insert_docs(&c, 4).await;
    for id in &ids {
        wait_for(
            "each document tried during the outage",
            Duration::from_secs(60),
            || async {
                let (_, _, err) = queue_row(&c, *id).await?;
                err.map(|_| ())
            },
        )
        .await;
    }
    ce.proxy.heal();
    wait_drained(&c, Duration::from_secs(60)).await;
    w.stop().await;
    assert_books(&ce.env, &c, &ids).await;
    drop(ce.erp.get().await.expect("ERP back"));
    drop(ce.erp.get().await.expect("ERP still up"));
    let text = lines.text();
    let warns = text.matches("ERP (SQL Server) unreachable").count();
    let infos = text.matches("ERP (SQL Server) reachable again").count();
    assert_eq!(warns, 1, "one WARN for the outage:\n{text}");
    assert_eq!(infos, 1, "one INFO when back:\n{text}");
    let per_doc = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("attempt failed"))
        .count();
    assert_eq!(
        per_doc, 0,
        "no WARN per document during the outage:\n{text}"
    );
    let warn_line = text
        .lines()
        .find(|l| l.contains("unreachable"))
        .unwrap_or_default();
    assert!(warn_line.contains("WARN"), "{warn_line}");
    assert!(
        warn_line.contains(&format!("127.0.0.1:{}", ce.proxy.port())),
        "the WARN names the server: {warn_line}"
    );
    assert!(
        warn_line.contains("reset")
            || warn_line.contains("refused")
            || warn_line.contains("closed"),
        "the WARN names the cause: {warn_line}"
    );
    assert!(!ce.erp.health().is_down());
}

/// A statement that gets no answer is bounded by the query timeout: the posting fails
/// transient (never `Data`, so the document is not failed), and the connection that timed out is
/// not handed out again with the late answer in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_erp_bounds_the_posting_and_the_connection_is_replaced() {
    let ce = chaos_env(1).await;
    let c = connect(&ce.env.url).await;
    let sale = insert_sale(&c, 2).await;
    let cfg = mikro_sync::posting::PostingConfig::default();
    let doc = mikro_sync::posting::load_document(
        &ce.env.pool.get().await.unwrap(),
        &cfg,
        mikro_sync::posting::DocKind::Satis,
        sale,
    )
    .await
    .expect("load");
    {
        let mut erp = ce.erp.get().await.expect("checkout");
        ce.proxy.blackhole(true);
        let r = tokio::time::timeout(
            Duration::from_secs(60),
            mikro_sync::posting::post_loaded(&mut erp, &cfg, &doc),
        )
        .await
        .expect("bounded by the query timeout, not hanging");
        match r {
            Err(mikro_sync::posting::PostError::Transient(m)) => {
                assert!(m.contains("no answer from SQL Server"), "{m}")
            }
            other => panic!("expected a transient timeout, got {other:?}"),
        }
    }
    // The held batch reaches the server once healed: it commits, and the connection's late
    // answer must not reach the next borrower.
    ce.proxy.heal();
    // As the worker would: retry while transient (the held batch may be committing right now).
    let mut p = None;
    for _ in 0..20 {
        let mut erp = ce.erp.get().await.expect("a connection after the heal");
        match mikro_sync::posting::post_loaded(&mut erp, &cfg, &doc).await {
            Ok(x) => {
                p = Some(x);
                break;
            }
            Err(mikro_sync::posting::PostError::Transient(_)) => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("not transient: {e:?}"),
        }
    }
    let p = p.expect("posted or found within 20 attempts");
    let postings = erp_postings(&ce.env, &[sale]).await;
    assert_eq!(
        (postings[0].1, postings[0].2),
        (1, 1),
        "exactly once: {p:?}"
    );
}

/// PostgreSQL errors read in full wherever they are reported (tokio-postgres alone says "db
/// error"; deadpool adds "Error occurred while creating a new object").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_errors_carry_code_message_and_detail() {
    let env = web_env(false).await;
    let c = env.client().await;
    c.batch_execute("CREATE TEMP TABLE şt (id int PRIMARY KEY); INSERT INTO şt VALUES (1)")
        .await
        .unwrap();
    let e = c
        .execute("INSERT INTO şt VALUES (1)", &[])
        .await
        .expect_err("duplicate");
    let t = mikro_sync::db::pg_error_text(&e);
    assert!(t.contains("23505"), "{t}");
    assert!(t.contains("duplicate key value"), "{t}");
    assert!(t.contains("detail: Key (id)=(1) already exists"), "{t}");

    // A pool whose server is gone: the cause, not "db error".
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let pool =
        mikro_sync::db::web_pool(&format!("postgres://postgres@127.0.0.1:{port}/web"), 1).unwrap();
    let e = pool.get().await.expect_err("nothing listens");
    let t = mikro_sync::db::pool_error_text(&e);
    assert!(t.contains("cannot open a web database connection"), "{t}");
    assert!(t.to_lowercase().contains("refused"), "{t}");
}

/// A LISTEN connection that cannot be opened (the server accepts TCP and never answers) does not
/// stop the worker: it posts by polling while the connect waits out its bound, here longer than
/// the test waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_connect_without_answer_does_not_stop_the_worker() {
    let ce = chaos_env(2).await;
    let pg: std::net::SocketAddr = format!("127.0.0.1:{}", ce.env.h.pg().port())
        .parse()
        .unwrap();
    let listen_proxy = mikro_emulator::fault_proxy::FaultProxy::start(pg)
        .await
        .unwrap();
    listen_proxy.blackhole(true);
    let listen_url = ce.env.url.replace(
        &format!(":{}/", ce.env.h.pg().port()),
        &format!(":{}/", listen_proxy.port()),
    );
    let c = connect(&ce.env.url).await;
    let mut opts = fast_opts();
    opts.listen_timeout = Duration::from_secs(600);
    opts.poll_interval = Duration::from_millis(200);
    let w = spawn_worker(&ce.env.pool, &listen_url, ce.sink(), opts);
    let ids = ce.insert_docs(&c, 8).await;
    wait_drained(&c, Duration::from_secs(120)).await;
    w.stop().await;
    assert_books(&ce.env, &c, &ids).await;
}
