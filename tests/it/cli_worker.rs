//! The daemon as systemd runs it: `mikro-sync worker` with metrics on, documents arriving, then
//! SIGTERM in the middle of the work. It must exit 0, leave no row claimed, and after a restart
//! every document is posted exactly once (ledger and CHA rows match the documents one to one).
//! Also checks /metrics, /healthz, /readyz and the log files.

use std::time::{Duration, Instant};

use mikro_emulator::harness::{Harness, HarnessOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    Some((status, body))
}

fn worker(
    h: &Harness,
    port: u16,
    logdir: &std::path::Path,
    extra: &[&str],
    extra_env: &[(&str, String)],
) -> tokio::process::Child {
    // Through `sh … exec` so WATCHDOG_PID can name the daemon's own pid, as systemd sets it.
    tokio::process::Command::new("sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$; export WATCHDOG_PID; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_mikro-sync"))
        .args(extra)
        .arg("worker")
        .current_dir(logdir)
        .env_clear()
        .envs(extra_env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MIKRO_SYNC_PG_URL", h.web_url())
        .env("MIKRO_SYNC_MSSQL_ADO", h.erp_ado())
        .env("MIKRO_SYNC_METRICS_LISTEN", port.to_string())
        .env("MIKRO_SYNC_LOG_DIR", logdir.join("logs"))
        .env("MIKRO_SYNC_ERP_SYNC_INTERVAL", "1s")
        .env("LOG_LEVEL", "info")
        // Files, not pipes: nobody reads a pipe while the daemon runs, and a full pipe must not
        // be what the test measures.
        .stdout(std::fs::File::create(logdir.join(format!("worker-{port}.stdout"))).unwrap())
        .stderr(std::fs::File::create(logdir.join(format!("worker-{port}.stderr"))).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn worker")
}

async fn wait_ready(port: u16) {
    let t0 = Instant::now();
    loop {
        if let Some((200, _)) = http_get(port, "/readyz").await {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "worker never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn erp_count(h: &Harness, sql: &str) -> i32 {
    let mut c = h.erp_client().await.unwrap();
    c.simple_query(sql)
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .and_then(|r| r.get::<i32, _>(0))
        .unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_metrics_health_and_graceful_shutdown() {
    let h = Harness::start(HarnessOptions::default())
        .await
        .expect("harness");
    let dir = tempfile::tempdir().unwrap();
    let web = h.web_client().await.unwrap();
    mikro_sync::setup::setup_web(&web).await.expect("setup");
    let mut erp = h.erp_client().await.unwrap();
    mikro_sync::setup::setup_erp(&mut erp)
        .await
        .expect("setup --erp");
    let cha_before = erp_count(&h, "SELECT COUNT(*) FROM CARI_HESAP_HAREKETLERI").await;

    let port = free_port();
    // systemd's side of Type=notify: a datagram socket the daemon reports to.
    let notify_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let child = worker(
        &h,
        port,
        dir.path(),
        &[],
        &[
            ("NOTIFY_SOCKET", notify_path.display().to_string()),
            ("WATCHDOG_USEC", "600000".to_string()),
        ],
    );
    let got = tokio::task::spawn_blocking(move || {
        let mut seen = String::new();
        let mut buf = [0u8; 512];
        while !(seen.contains("READY=1") && seen.contains("WATCHDOG=1")) {
            match notify.recv(&mut buf) {
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(_) => break,
            }
            seen.push('\n');
        }
        seen
    })
    .await
    .unwrap();
    assert!(
        got.contains("READY=1"),
        "READY=1 after the listener is up: {got}"
    );
    assert!(got.contains("WATCHDOG=1"), "the watchdog is fed: {got}");
    wait_ready(port).await;
    let (code, body) = http_get(port, "/healthz").await.expect("healthz");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"listener\":true"), "{body}");

    // 60 sales in 6 transactions, then SIGTERM while they are being posted.
    const N: i64 = 60;
    const TOTAL: i64 = N + 3;
    for _ in 0..6 {
        web.batch_execute(
            "WITH s AS (
                 INSERT INTO satislar (satis_no, cari_hesap_id, odeme_sekli, ara_toplam, toplam_tutar)
                 SELECT 'W' || g, (SELECT id FROM cari_hesaplar ORDER BY cari_kodu LIMIT 1), 'acik_hesap', 10, 12
                   FROM generate_series(1, 10) g RETURNING id)
             INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani, kdv_tutari, toplam_tutar, sira_no)
             SELECT s.id, (SELECT id FROM stoklar ORDER BY stok_kodu LIMIT 1), 1, 10, 20, 2, 12, 0 FROM s;",
        )
        .await
        .unwrap();
    }
    // Wait until some (not necessarily all) are done, then stop.
    let t0 = Instant::now();
    loop {
        let done: i64 = web
            .query_one(
                "SELECT count(*) FROM sync_queue WHERE status = 'completed'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if done >= 5 || t0.elapsed() > Duration::from_secs(60) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let expected = [
        "mikro_sync_documents_posted_total",
        "mikro_sync_posting_latency_seconds_bucket",
        "mikro_sync_pickup_latency_seconds_count",
        "mikro_sync_listener_up 1",
        "mikro_sync_pool_up{pool=\"web\"} 1",
        "mikro_sync_queue_depth{status=\"pending\"}",
        "mikro_sync_erp_sync_runs_total{result=\"ok\"}",
        "mikro_sync_erp_sync_rows_total{entity=\"stok\"",
    ];
    // The first ERP→web run and the first postings race each other: scrape until both have
    // shown up (or a minute has passed, then the assertion names what is missing).
    let t0 = Instant::now();
    let metrics = loop {
        let (code, metrics) = http_get(port, "/metrics").await.expect("metrics");
        assert_eq!(code, 200);
        if expected.iter().all(|n| metrics.contains(n)) || t0.elapsed() > Duration::from_secs(60) {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for name in expected {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    let pid = child.id().expect("pid").to_string();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(st.success());
    let mut child = child;
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("worker stops within 60 s after SIGTERM")
        .unwrap();
    let read = |ext: &str| {
        std::fs::read_to_string(dir.path().join(format!("worker-{port}.{ext}"))).unwrap_or_default()
    };
    let log = read("stdout") + &read("stderr");
    assert!(status.success(), "exit 0 after SIGTERM: {status:?}\n{log}");
    assert!(log.contains("worker stopped cleanly"), "{log}");
    let claimed: i64 = web
        .query_one(
            "SELECT count(*) FROM sync_queue WHERE status = 'processing'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(claimed, 0, "no row may stay claimed after a graceful stop");
    let done: i64 = web
        .query_one(
            "SELECT count(*) FROM sync_queue WHERE status = 'completed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    eprintln!("completed when the first worker stopped: {done} of {N}");
    // Log files exist as configured.
    let files: Vec<String> = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        files.iter().any(|f| f.starts_with("combined.log")),
        "{files:?}"
    );
    assert!(
        files.iter().any(|f| f.starts_with("error.log")),
        "{files:?}"
    );

    // Restart: the rest is posted; every document exactly once.
    let port2 = free_port();
    let child = worker(&h, port2, dir.path(), &["--log-format", "json"], &[]);
    wait_ready(port2).await;
    // Three more, so this run certainly posts something (the first may have finished all).
    web.batch_execute(
        "WITH s AS (
             INSERT INTO satislar (satis_no, cari_hesap_id, odeme_sekli, ara_toplam, toplam_tutar)
             SELECT 'X' || g, (SELECT id FROM cari_hesaplar ORDER BY cari_kodu LIMIT 1), 'acik_hesap', 10, 12
               FROM generate_series(1, 3) g RETURNING id)
         INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani, kdv_tutari, toplam_tutar, sira_no)
         SELECT s.id, (SELECT id FROM stoklar ORDER BY stok_kodu LIMIT 1), 1, 10, 20, 2, 12, 0 FROM s;",
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    loop {
        let open: i64 = web
            .query_one(
                "SELECT count(*) FROM sync_queue WHERE status IN ('pending', 'processing')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if open == 0 {
            break;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let rows = web
                .query(
                    "SELECT status, retry_count, coalesce(error_message, ''), next_attempt_at::text
                       FROM sync_queue WHERE status IN ('pending', 'processing')",
                    &[],
                )
                .await
                .unwrap();
            let rows: Vec<String> = rows
                .iter()
                .map(|r| {
                    format!(
                        "{} {} {} {}",
                        r.get::<_, String>(0),
                        r.get::<_, i32>(1),
                        r.get::<_, String>(2),
                        r.get::<_, Option<String>>(3).unwrap_or_default()
                    )
                })
                .collect();
            let act: Vec<String> = web
                .query(
                    "SELECT datname || ' ' || coalesce(application_name, '') || ' ' || coalesce(state, '')
                            || ' wait=' || coalesce(wait_event_type || ':' || wait_event, '-')
                            || ' xact=' || coalesce((now() - xact_start)::text, '-')
                            || ' q=' || left(query, 300)
                       FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            panic!("{open} documents still open: {rows:#?}\n{act:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let completed: i64 = web
        .query_one(
            "SELECT count(*) FROM sync_queue WHERE status = 'completed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(completed, TOTAL, "every document completed (none failed)");
    let ledger = erp_count(
        &h,
        "SELECT COUNT(*) FROM dbo.MIKROSYNC_LEDGER WHERE ml_kind = N'satis'",
    )
    .await;
    assert_eq!(ledger as i64, TOTAL, "one ledger row per document");
    let cha_after = erp_count(&h, "SELECT COUNT(*) FROM CARI_HESAP_HAREKETLERI").await;
    assert_eq!(
        (cha_after - cha_before) as i64,
        TOTAL,
        "one CHA header per document, none doubled"
    );
    let pid = child.id().expect("pid").to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let mut child = child;
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("second worker stops")
        .unwrap();
    assert!(status.success());
    // --log-format json: one JSON object per line; document lines carry the span fields.
    let stdout =
        std::fs::read_to_string(dir.path().join(format!("worker-{port2}.stdout"))).unwrap();
    let mut doc_lines = 0;
    for l in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        if let Some(span) = v.get("span") {
            if span.get("queue_id").is_some() {
                assert!(
                    span.get("web_id").is_some() && span.get("kind").is_some(),
                    "{l}"
                );
                doc_lines += 1;
            }
        }
    }
    assert!(
        doc_lines > 0,
        "no document lines in the JSON log:\n{stdout}"
    );
}
