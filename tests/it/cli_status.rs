//! `mikro-sync status` and `mikro-sync retry-failed` on a real PostgreSQL: the binary is run as
//! an operator runs it, configured through the environment only.

use mikro_emulator::harness::{WEB_SCHEMA, WEB_SEED};
use mikro_emulator::pgcluster::PgCluster;

async fn mikro_sync(url: &str, args: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap(); // no stray .env is read
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mikro-sync"))
        .args(args)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MIKRO_SYNC_PG_URL", url)
        .output()
        .await
        .expect("run mikro-sync");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_retry_failed() {
    let pg = PgCluster::start().await.expect("cluster");
    pg.create_database("web").await.unwrap();
    pg.execute("web", WEB_SCHEMA).await.unwrap();
    pg.execute("web", WEB_SEED).await.unwrap();
    let url = pg.url("web");

    // Before setup: a clear instruction, non-zero exit.
    let (ok, text) = mikro_sync(&url, &["status"]).await;
    assert!(!ok, "{text}");
    assert!(text.contains("mikro-sync setup"), "{text}");

    let (ok, text) = mikro_sync(&url, &["setup"]).await;
    assert!(ok, "{text}");
    assert!(text.contains("satis_sync_trigger"), "{text}");

    // Three sales and two collections as a web app writes them; the triggers enqueue them.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "INSERT INTO satislar (satis_no, cari_hesap_id, odeme_sekli)
             SELECT 'S' || g, (SELECT id FROM cari_hesaplar ORDER BY cari_kodu LIMIT 1), 'acik_hesap'
               FROM generate_series(1, 3) g;
             INSERT INTO tahsilatlar (tahsilat_no, cari_hesap_id, tahsilat_tipi, tutar)
             SELECT 'T' || g, (SELECT id FROM cari_hesaplar ORDER BY cari_kodu LIMIT 1), 'nakit', 10
               FROM generate_series(1, 2) g;",
        )
        .await
        .unwrap();
    // Two sales fail with the same message, one collection with another (as the worker would leave them).
    client
        .batch_execute(
            "UPDATE sync_queue SET status = 'failed', retry_count = 3, processed_at = now(),
                    error_message = 'no Mikro code for customer: add a row to int_kodmap_cari'
              WHERE id IN (SELECT id FROM sync_queue WHERE entity_type = 'satis' ORDER BY created_at, id LIMIT 2);
             UPDATE sync_queue SET status = 'failed', retry_count = 3, processed_at = now(),
                    error_message = 'unknown tahsilat_tipi'
              WHERE id IN (SELECT id FROM sync_queue WHERE entity_type = 'tahsilat' ORDER BY created_at, id LIMIT 1);",
        )
        .await
        .unwrap();

    let (ok, text) = mikro_sync(&url, &["status"]).await;
    assert!(ok, "{text}");
    let line = |name: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no `{name}` row in:\n{text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    // type, pending, processing, completed, failed, diverged
    assert_eq!(line("satis")[1..], ["1", "0", "0", "2", "0"], "{text}");
    assert_eq!(line("tahsilat")[1..], ["1", "0", "0", "1", "0"], "{text}");
    assert_eq!(line("total")[1..], ["2", "0", "0", "3", "0"], "{text}");
    assert!(
        text.contains("Oldest pending:") && !text.contains("Oldest pending: none"),
        "{text}"
    );
    assert!(
        text.contains("2 × satis: no Mikro code for customer"),
        "{text}"
    );
    assert!(
        text.contains("1 × tahsilat: unknown tahsilat_tipi"),
        "{text}"
    );
    assert!(text.contains("Listener: NOT CONNECTED"), "{text}");

    // A listener connection named as the worker names it is seen.
    let (_l, lconn) = tokio_postgres::connect(
        &format!("{url}?application_name=mikro-sync%20listener"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(lconn);
    let (_, text) = mikro_sync(&url, &["status"]).await;
    assert!(
        text.contains("Listener: connected (1 worker listening)"),
        "{text}"
    );

    // retry-failed --type tahsilat --dry-run changes nothing.
    let (ok, text) = mikro_sync(&url, &["retry-failed", "--type", "tahsilat", "--dry-run"]).await;
    assert!(ok && text.contains("1 document(s) would retry"), "{text}");
    let failed: i64 = client
        .query_one(
            "SELECT count(*) FROM sync_queue WHERE status = 'failed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(failed, 3);

    // By id: exactly that row.
    let one: String = client
        .query_one(
            "SELECT id::text FROM sync_queue WHERE status = 'failed' AND entity_type = 'satis' ORDER BY id LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let (ok, text) = mikro_sync(&url, &["retry-failed", "--id", &one]).await;
    assert!(ok && text.contains("1 document(s) re-queued"), "{text}");
    let r = client
        .query_one(
            "SELECT status, retry_count FROM sync_queue WHERE id::text = $1",
            &[&one],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.get::<_, String>(0), r.get::<_, i32>(1)),
        ("pending".to_string(), 0)
    );

    // By type, then everything that is left.
    let (ok, text) = mikro_sync(&url, &["retry-failed", "--type", "satis"]).await;
    assert!(ok && text.contains("1 document(s) re-queued"), "{text}");
    let (ok, text) = mikro_sync(&url, &["retry-failed"]).await;
    assert!(ok && text.contains("1 document(s) re-queued"), "{text}");
    let (ok, text) = mikro_sync(&url, &["retry-failed"]).await;
    assert!(ok && text.contains("nothing re-queued"), "{text}");
    let (_, text) = mikro_sync(&url, &["status"]).await;
    assert_eq!(
        line_of(&text, "total")[1..],
        ["5", "0", "0", "0", "0"],
        "{text}"
    );
    assert!(text.contains("Failed documents: none"), "{text}");

    // A claimed row shows who works on it.
    client
        .batch_execute(
            "UPDATE sync_queue SET status = 'processing', claimed_by = 'shop-server:4242:beef',
                    claimed_at = now(), lease_until = now() + interval '30 seconds'
              WHERE id = (SELECT id FROM sync_queue ORDER BY id LIMIT 1)",
        )
        .await
        .unwrap();
    let (_, text) = mikro_sync(&url, &["status"]).await;
    assert!(
        text.contains("Processing: 1 by shop-server:4242:beef"),
        "{text}"
    );

    // Bad usage is rejected by clap with a message.
    let (ok, text) = mikro_sync(&url, &["retry-failed", "--type", "fatura"]).await;
    assert!(!ok && text.contains("fatura"), "{text}");
}

fn line_of(text: &str, name: &str) -> Vec<String> {
    text.lines()
        .find(|l| l.trim_start().starts_with(name))
        .unwrap_or_else(|| panic!("no `{name}` row in:\n{text}"))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}
