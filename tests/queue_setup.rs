//! Web install: idempotent setup, adoption of the old tool's queue, the enqueue contract
//! (dedup, kaynak / ERP-origin filtering, CHECKs) and the operator retry query.

mod common;

use common::*;
use mikro_sync::setup::{setup_web, StepOutcome};
use uuid::Uuid;

#[tokio::test]
async fn setup_is_idempotent_and_reports() {
    let env = web_env(false).await;
    let c = env.client().await;
    let first = setup_web(&c).await.unwrap();
    assert!(first.changed());
    assert!(first.steps.iter().all(|(_, o)| *o == StepOutcome::Applied));
    let text = first.to_string();
    assert!(text.contains("queue sync_queue ready: 0 rows"), "{text}");
    assert!(
        text.contains("trigger satis_sync_trigger on satislar"),
        "{text}"
    );
    assert!(
        text.contains("trigger tahsilat_sync_trigger on tahsilatlar"),
        "{text}"
    );

    let schema_before: Vec<String> = schema_fingerprint(&c).await;
    let second = setup_web(&c).await.unwrap();
    assert!(!second.changed(), "{second}");
    assert!(second.to_string().contains("nothing to do"));
    assert_eq!(schema_fingerprint(&c).await, schema_before);
    // Exactly one trigger per table.
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid \
             WHERE NOT t.tgisinternal AND r.relname IN ('satislar', 'tahsilatlar')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}

async fn schema_fingerprint(c: &tokio_postgres::Client) -> Vec<String> {
    c.query(
        "SELECT table_name || '.' || column_name || ':' || data_type || ':' || coalesce(column_default, '') \
           FROM information_schema.columns WHERE table_schema = 'public' \
         UNION ALL SELECT indexname || ':' || indexdef FROM pg_indexes WHERE schemaname = 'public' \
         UNION ALL SELECT tgname || ':' || tgfoid::regproc::text FROM pg_trigger WHERE NOT tgisinternal \
         UNION ALL SELECT conname || ':' || pg_get_constraintdef(oid) FROM pg_constraint \
           WHERE connamespace = 'public'::regnamespace \
         ORDER BY 1",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test]
async fn setup_adopts_the_old_tools_queue() {
    let env = web_env(false).await;
    let c = env.client().await;
    let (a, b, d, e) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    c.batch_execute(&format!(
        "CREATE TABLE sync_queue (
            id uuid PRIMARY KEY, entity_type varchar(50), entity_id uuid, operation varchar(20),
            status varchar(20) CHECK (status IN ('PENDING','PROCESSING','COMPLETED','FAILED','pending','processing','completed','failed')),
            retry_count int, error_message text, created_at timestamp DEFAULT now(), processed_at timestamp);
         INSERT INTO sync_queue VALUES
            (gen_random_uuid(), 'SATIS', '{a}', 'INSERT', 'PENDING', NULL, NULL, now() - interval '2 day', NULL),
            (gen_random_uuid(), 'satislar', '{a}', 'INSERT', 'pending', 0, NULL, now() - interval '1 day', NULL),
            (gen_random_uuid(), 'tahsilat', '{b}', 'INSERT', 'PROCESSING', 1, NULL, now(), NULL),
            (gen_random_uuid(), 'satis', '{d}', 'INSERT', 'FAILED', 3, 'mapping yok', now(), NULL),
            (gen_random_uuid(), 'siparis', '{e}', 'INSERT', 'COMPLETED', 0, NULL, now(), now());
         CREATE FUNCTION old_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO sync_queue (id, entity_type, entity_id, operation, status)
               VALUES (gen_random_uuid(), 'SATIS', NEW.id, 'INSERT', 'PENDING'); RETURN NEW; END $$;
         CREATE TRIGGER trg_satislar_sync_queue AFTER INSERT ON satislar FOR EACH ROW EXECUTE FUNCTION old_enqueue();"
    ))
    .await
    .unwrap();

    let report = setup_web(&c).await.unwrap();
    assert_eq!(
        report.removed_triggers,
        vec!["trg_satislar_sync_queue on satislar".to_string()]
    );
    assert_eq!(report.queue_rows, 5, "never drops data: {report}");

    let rows: Vec<(String, Uuid, String, i32, Option<String>)> = c
        .query(
            "SELECT entity_type, entity_id, status, retry_count, error_message FROM sync_queue ORDER BY created_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    // Two open rows for sale a: the oldest stays pending, the other is merged (completed).
    assert_eq!(rows[0].0, "satis");
    assert_eq!(rows[0].2, "pending");
    assert_eq!(rows[0].3, 0);
    assert_eq!(rows[1].2, "completed");
    assert!(rows[1]
        .4
        .as_deref()
        .unwrap()
        .contains("duplicate of queue row"));
    // The stuck processing row is released; statuses are lower case.
    let st = |id: Uuid| rows.iter().find(|r| r.1 == id).unwrap().clone();
    assert_eq!(st(b).2, "pending");
    assert_eq!(st(d).2, "failed");
    assert_eq!(st(d).4.as_deref(), Some("mapping yok"));
    // Unknown type parked as failed, kept.
    assert_eq!(st(e).2, "failed");
    assert!(st(e).4.unwrap().contains("unknown entity_type 'siparis'"));

    // The CHECKs hold for new rows.
    let bad = c
        .execute(
            "INSERT INTO sync_queue (entity_type, entity_id) VALUES ('SATIS', gen_random_uuid())",
            &[],
        )
        .await;
    assert!(bad.is_err());
    let bad = c
        .execute("INSERT INTO sync_queue (entity_type, entity_id, status) VALUES ('satis', gen_random_uuid(), 'PENDING')", &[])
        .await;
    assert!(bad.is_err());

    // New sales enqueue once (old trigger gone), and a second setup changes nothing.
    let s = insert_sale(&c, 1).await;
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM sync_queue WHERE entity_id = $1",
            &[&s],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let again = setup_web(&c).await.unwrap();
    assert!(!again.changed(), "{again}");
}

#[tokio::test]
async fn enqueue_contract() {
    let env = web_env(true).await;
    let c = env.client().await;
    // A sale and a collection enqueue once each, with the one spelling.
    let s = insert_sale(&c, 2).await;
    let t = insert_collection(&c, "150.00").await;
    let rows = c
        .query("SELECT entity_type, entity_id, status, retry_count FROM sync_queue ORDER BY entity_type", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].get::<_, String>(0), rows[0].get::<_, Uuid>(1)),
        ("satis".into(), s)
    );
    assert_eq!(
        (rows[1].get::<_, String>(0), rows[1].get::<_, Uuid>(1)),
        ("tahsilat".into(), t)
    );
    assert_eq!(rows[0].get::<_, String>(2), "pending");
    assert_eq!(rows[0].get::<_, i32>(3), 0);

    // Dedup: enqueueing the same document again while open does nothing.
    c.execute(
        "INSERT INTO sync_queue (entity_type, entity_id) VALUES ('satis', $1) \
         ON CONFLICT (entity_type, entity_id) WHERE status IN ('pending', 'processing') DO NOTHING",
        &[&s],
    )
    .await
    .unwrap();
    let dup = c
        .execute(
            "INSERT INTO sync_queue (entity_type, entity_id) VALUES ('satis', $1)",
            &[&s],
        )
        .await;
    assert!(
        dup.is_err(),
        "second open row must violate the one-open-row index"
    );
    assert_eq!(count_status(&c, "pending").await, 2);

    // UPDATE of a document never enqueues it.
    c.execute(
        "UPDATE satislar SET notlar = 'x', fatura_sira_no = 5 WHERE id = $1",
        &[&s],
    )
    .await
    .unwrap();
    c.execute(
        "UPDATE sync_queue SET status = 'completed' WHERE entity_id = $1",
        &[&s],
    )
    .await
    .unwrap();
    c.execute("UPDATE satislar SET notlar = 'y' WHERE id = $1", &[&s])
        .await
        .unwrap();
    assert_eq!(count_status(&c, "pending").await, 1);

    // ERP-origin rows are not enqueued: kaynak = 'erp', or the session marked as ERP.
    c.batch_execute(&format!(
        "INSERT INTO satislar (cari_hesap_id, kaynak) VALUES ('{CARI_1}', 'erp');
         BEGIN; SET LOCAL mikro_sync.origin = 'erp';
         INSERT INTO tahsilatlar (cari_hesap_id, tutar) VALUES ('{CARI_1}', 5);
         INSERT INTO satislar (cari_hesap_id) VALUES ('{CARI_1}');
         COMMIT;
         INSERT INTO satislar (cari_hesap_id, kaynak) VALUES ('{CARI_1}', NULL);"
    ))
    .await
    .unwrap();
    let n: i64 = c
        .query_one("SELECT count(*) FROM sync_queue", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3, "only the kaynak NULL sale is added");
}

#[tokio::test]
async fn operator_retry_query_makes_the_row_due_and_notifies() {
    let env = web_env(true).await;
    let c = env.client().await;
    let s = insert_sale(&c, 1).await;
    c.execute(
        "UPDATE sync_queue SET status = 'failed', retry_count = 3, error_message = 'x', \
         next_attempt_at = now() + interval '1 day', first_attempt_at = now() - interval '1 day' WHERE entity_id = $1",
        &[&s],
    )
    .await
    .unwrap();
    // A listener on the channel sees the notify of the operator's UPDATE.
    let (lc, mut conn) = tokio_postgres::connect(&env.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        use futures::StreamExt;
        let mut st = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = st.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send(n.channel().to_string());
            }
        }
    });
    lc.batch_execute("LISTEN mikro_sync_queue").await.unwrap();

    let n = c
        .execute(
            "UPDATE sync_queue SET status = 'pending', retry_count = 0 WHERE status = 'failed'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let r = c
        .query_one(
            "SELECT status, retry_count, next_attempt_at <= now(), first_attempt_at IS NULL FROM sync_queue WHERE entity_id = $1",
            &[&s],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "pending");
    assert_eq!(r.get::<_, i32>(1), 0);
    assert!(r.get::<_, bool>(2), "due now");
    assert!(r.get::<_, bool>(3), "fresh retry window");
    let ch = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("notification")
        .unwrap();
    assert_eq!(ch, "mikro_sync_queue");
}
