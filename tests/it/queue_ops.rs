//! The library calls "ship" builds the CLI on: `stats`, `retry_failed`, `Worker::run_until_idle`.

use crate::common;

use std::sync::Arc;

use common::*;
use mikro_sync::posting::{DocKind, PostError};
use mikro_sync::queue::{retry_failed, stats, Job, PgListenConnector, RetryFilter, Worker};

#[tokio::test]
async fn stats_count_by_status() {
    let env = web_env(true).await;
    let c = env.client().await;
    let s = stats(&c).await.unwrap();
    assert_eq!(
        (s.pending, s.processing, s.completed, s.failed),
        (0, 0, 0, 0)
    );
    assert!(s.oldest_pending_age.is_none());
    let a = insert_sale(&c, 1).await;
    insert_sale(&c, 1).await;
    insert_collection(&c, "5").await;
    c.execute(
        "UPDATE sync_queue SET status = 'failed' WHERE entity_id = $1",
        &[&a],
    )
    .await
    .unwrap();
    let s = stats(&c).await.unwrap();
    assert_eq!((s.pending, s.due, s.failed), (2, 2, 1));
    assert!(s.oldest_pending_age.is_some());
    assert!(s.to_string().contains("pending=2"));
}

#[tokio::test]
async fn retry_failed_by_kind_and_id() {
    let env = web_env(true).await;
    let c = env.client().await;
    let s1 = insert_sale(&c, 1).await;
    let s2 = insert_sale(&c, 1).await;
    let t1 = insert_collection(&c, "5").await;
    c.batch_execute(
        "UPDATE sync_queue SET status = 'failed', retry_count = 3, error_message = 'x'",
    )
    .await
    .unwrap();
    let n = retry_failed(
        &c,
        &RetryFilter {
            ids: vec![],
            kind: Some(DocKind::Tahsilat),
        },
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    assert_eq!(queue_row(&c, t1).await.unwrap().0, "pending");
    assert_eq!(queue_row(&c, t1).await.unwrap().1, 0);
    let id2: uuid::Uuid = c
        .query_one("SELECT id FROM sync_queue WHERE entity_id = $1", &[&s2])
        .await
        .unwrap()
        .get(0);
    let n = retry_failed(
        &c,
        &RetryFilter {
            ids: vec![id2],
            kind: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    assert_eq!(queue_row(&c, s1).await.unwrap().0, "failed");
    assert_eq!(queue_row(&c, s2).await.unwrap().0, "pending");
}

#[tokio::test]
async fn run_until_idle_drains_and_returns() {
    let env = web_env(true).await;
    let c = env.client().await;
    for _ in 0..25 {
        insert_sale(&c, 1).await;
    }
    let bad = insert_collection(&c, "1").await;
    let sink = ScriptSink::new(Arc::new(move |j: &Job, _n| {
        if j.entity_id == bad {
            Err(PostError::Data("no mapping".into()))
        } else {
            Ok(posted("ST", 1))
        }
    }));
    let mut opts = fast_opts();
    opts.retry.data_max_attempts = 1;
    let listen = Arc::new(PgListenConnector::from_url_notls(&env.url).unwrap());
    let report = Worker::new(env.pool.clone(), listen, sink, opts)
        .run_until_idle()
        .await
        .unwrap();
    assert_eq!(report.posted, 25);
    assert_eq!(report.failed, 1);
    assert_eq!(count_status(&c, "completed").await, 25);
    assert_eq!(count_status(&c, "failed").await, 1);
    assert_eq!(count_status(&c, "processing").await, 0);
}

/// One `finish` statement writes a completion (number written back), a retry (due later, its
/// message kept) and a give-up together; a failed attempt of a row that is no longer this
/// worker's is not written, a completion of it is (the document is in Mikro).
#[tokio::test]
async fn finish_writes_mixed_outcomes_in_one_statement() {
    use mikro_sync::queue::store::{self, Outcome};
    use std::time::Duration;
    let env = web_env(true).await;
    let c = env.client().await;
    let (done, later, given_up) = (
        insert_sale(&c, 1).await,
        insert_sale(&c, 1).await,
        insert_collection(&c, "5").await,
    );
    let other = insert_sale(&c, 1).await;
    let pooled = env.pool.get().await.unwrap();
    let jobs = store::claim(&pooled, "w1", 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 4, "the claim returns every claimed row");
    let qid = |e: uuid::Uuid| jobs.iter().find(|j| j.entity_id == e).unwrap().id;
    // `other` was rescued and claimed by another worker meanwhile.
    c.execute(
        "UPDATE sync_queue SET claimed_by = 'w2' WHERE entity_id = $1",
        &[&other],
    )
    .await
    .unwrap();
    let completed = Outcome::Completed {
        seri: "ST".into(),
        sira: 7,
        posted: None,
    };
    let retry = Outcome::Retry {
        delay: Duration::from_secs(600),
        message: "ERP down".into(),
    };
    let failed = Outcome::Failed {
        message: "bad customer".into(),
    };
    let n = store::finish(
        &pooled,
        "w1",
        &[
            (qid(done), &completed),
            (qid(later), &retry),
            (qid(given_up), &failed),
            (qid(other), &failed),
        ],
    )
    .await
    .unwrap();
    assert_eq!(n, 3, "the other worker's row is not failed by w1");
    assert_eq!(queue_row(&c, done).await.unwrap().0, "completed");
    let r = c
        .query_one(
            "SELECT fatura_seri_no, fatura_sira_no FROM satislar WHERE id = $1",
            &[&done],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.get::<_, String>(0), r.get::<_, i32>(1)),
        ("ST".into(), 7)
    );
    let r = c
        .query_one(
            "SELECT status, error_message, next_attempt_at > now() + interval '500 seconds', \
                    claimed_by IS NULL, processed_at IS NULL \
               FROM sync_queue WHERE entity_id = $1",
            &[&later],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "pending");
    assert_eq!(r.get::<_, String>(1), "ERP down");
    assert!(r.get::<_, bool>(2) && r.get::<_, bool>(3) && r.get::<_, bool>(4));
    let (st, _, msg) = queue_row(&c, given_up).await.unwrap();
    assert_eq!(
        (st.as_str(), msg.as_deref()),
        ("failed", Some("bad customer"))
    );
    assert_eq!(queue_row(&c, other).await.unwrap().0, "processing");
    // A completion is written even for a row another worker holds now.
    let n = store::finish(&pooled, "w1", &[(qid(other), &completed)])
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(queue_row(&c, other).await.unwrap().0, "completed");
}

/// The claim that reads the documents returns each claimed row with its document exactly as
/// `load_document` reads it (a sale with its lines, a collection), and a row whose document is
/// gone as a data error naming the table, all in one statement.
#[tokio::test]
async fn claim_returns_the_documents_it_claims() {
    use mikro_sync::posting::{load_document, LoadedDocument, PostingConfig};
    use mikro_sync::queue::store;
    use std::time::Duration;
    let env = web_env(true).await;
    let c = env.client().await;
    let sale = insert_sale(&c, 3).await;
    let one_line = insert_sale(&c, 1).await;
    let coll = insert_collection(&c, "5").await;
    let gone = uuid::Uuid::new_v4();
    c.execute(
        "INSERT INTO sync_queue (entity_type, entity_id) VALUES ('satis', $1)",
        &[&gone],
    )
    .await
    .unwrap();
    let cfg = PostingConfig::default();
    let pooled = env.pool.get().await.unwrap();
    let jobs = store::claim_documents(&pooled, "w1", 10, Duration::from_secs(60), &cfg)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 4);
    for (id, kind) in [
        (sale, DocKind::Satis),
        (one_line, DocKind::Satis),
        (coll, DocKind::Tahsilat),
    ] {
        let job = jobs.iter().find(|j| j.entity_id == id).unwrap();
        assert_eq!(job.kind, kind);
        let claimed = job.document.as_ref().expect("document read by the claim");
        let read = load_document(&c, &cfg, kind, id).await.unwrap();
        assert_eq!(format!("{claimed:?}"), format!("{read:?}"));
        assert!(
            !matches!(**claimed, LoadedDocument::Invalid { .. }),
            "{claimed:?}"
        );
    }
    match jobs
        .iter()
        .find(|j| j.entity_id == sale)
        .unwrap()
        .document
        .as_deref()
    {
        Some(LoadedDocument::Sale(s)) => assert_eq!(s.lines.len(), 3),
        other => panic!("expected the sale, got {other:?}"),
    }
    match jobs
        .iter()
        .find(|j| j.entity_id == gone)
        .unwrap()
        .document
        .as_deref()
    {
        Some(LoadedDocument::Invalid { error, .. }) => {
            assert!(error.to_string().contains("not in satislar"), "{error}")
        }
        other => panic!("expected a data error, got {other:?}"),
    }
    // The plain claim (a sink that needs no document) reads none.
    insert_sale(&c, 1).await;
    let plain = store::claim(&pooled, "w1", 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(plain.len(), 1);
    assert!(plain[0].document.is_none());
}

#[tokio::test]
async fn claimable_says_yes_exactly_when_a_claim_finds_a_row() {
    use mikro_sync::queue::store;
    use std::time::Duration;
    let env = web_env(true).await;
    let c = env.client().await;
    let pooled = env.pool.get().await.unwrap();
    assert!(!store::claimable(&pooled).await.unwrap(), "empty queue");
    let sale = insert_sale(&c, 1).await;
    let inbox: i64 = c
        .query_one("SELECT count(*) FROM sync_queue_inbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(inbox, 1, "the trigger writes the inbox");
    assert!(
        store::claimable(&pooled).await.unwrap(),
        "a row in the inbox"
    );
    let jobs = store::claim(&pooled, "w1", 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert!(
        !store::claimable(&pooled).await.unwrap(),
        "claimed: processing"
    );
    // Back to pending, first not yet due (a retry's backoff), then due.
    c.execute(
        "UPDATE sync_queue SET status = 'pending', claimed_by = NULL, \
                next_attempt_at = now() + interval '1 hour' WHERE entity_id = $1",
        &[&sale],
    )
    .await
    .unwrap();
    assert!(
        !store::claimable(&pooled).await.unwrap(),
        "pending, not due"
    );
    assert!(store::claim(&pooled, "w1", 10, Duration::from_secs(60))
        .await
        .unwrap()
        .is_empty());
    c.execute(
        "UPDATE sync_queue SET next_attempt_at = now() - interval '1 second' \
          WHERE entity_id = $1",
        &[&sale],
    )
    .await
    .unwrap();
    assert!(store::claimable(&pooled).await.unwrap(), "pending and due");
    let again = store::claim(&pooled, "w1", 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "what the probe saw, the claim takes");
}
