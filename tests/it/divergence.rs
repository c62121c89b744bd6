//! Edits and deletes after posting are never silent (issue 15 item 3): each case below is done
//! the way a web app (or an operator) does it, against a real worker posting into the emulator,
//! and must end in one `diverged` queue row whose message says what changed and what to do in
//! Mikro — while Mikro itself is left exactly as it was posted.

use crate::common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use mikro_sync::posting::{PostError, Posted};
use mikro_sync::queue::{Job, Sink};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

struct Env {
    full: FullEnv,
    c: tokio_postgres::Client,
    worker: Option<RunningWorker>,
}

/// The production sink, held at a gate: each document's posting waits (after the claim read it,
/// before it goes to Mikro) until the test opens the gate, so the test can change the web
/// document between the claim and the write-back of its number.
#[derive(Clone)]
struct GateSink {
    inner: mikro_sync::queue::MikroSink,
    arrived: Arc<Mutex<HashSet<Uuid>>>,
    gate: Arc<tokio::sync::Semaphore>,
}

impl Sink for GateSink {
    async fn post(&self, job: &Job) -> Result<Posted, PostError> {
        self.arrived.lock().unwrap().insert(job.entity_id);
        let permit = self.gate.acquire().await;
        drop(permit);
        self.inner.post(job).await
    }

    fn documents(&self) -> Option<&mikro_sync::posting::PostingConfig> {
        self.inner.documents()
    }
}

impl GateSink {
    /// Waits until every document in `ids` is held at the gate (claimed, read, not posted).
    async fn wait_arrived(&self, ids: &[Uuid]) {
        wait_for("the documents held at the gate", WAIT, || async {
            let a = self.arrived.lock().unwrap();
            ids.iter().all(|id| a.contains(id)).then_some(())
        })
        .await
    }

    fn open(&self) {
        self.gate.add_permits(1000);
    }
}

impl Env {
    async fn start() -> Env {
        let full = full_env().await;
        let c = connect(&full.url).await;
        let sink = mikro_sink(&full, 2).await;
        let worker = spawn_worker(&full.pool, &full.url, sink, fast_opts());
        Env {
            full,
            c,
            worker: Some(worker),
        }
    }

    /// A worker whose postings wait at the returned gate.
    async fn start_gated() -> (Env, GateSink) {
        let full = full_env().await;
        let c = connect(&full.url).await;
        let sink = GateSink {
            inner: mikro_sink(&full, 2).await,
            arrived: Arc::default(),
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
        };
        let mut opts = fast_opts();
        opts.concurrency = 16;
        let worker = spawn_worker(&full.pool, &full.url, sink.clone(), opts);
        let env = Env {
            full,
            c,
            worker: Some(worker),
        };
        (env, sink)
    }

    /// Waits until the document's number is written back; answers `SERIES-NUMBER`.
    async fn posted_number(&self, id: Uuid) -> String {
        wait_for("the Mikro number written back", WAIT, || async {
            let r = self
                .c
                .query_opt(
                    "SELECT fatura_seri_no || '-' || fatura_sira_no FROM satislar
                      WHERE id = $1 AND fatura_sira_no IS NOT NULL
                     UNION ALL
                     SELECT tahsilat_seri_no || '-' || tahsilat_sira_no FROM tahsilatlar
                      WHERE id = $1 AND tahsilat_sira_no IS NOT NULL",
                    &[&id],
                )
                .await
                .unwrap();
            r.map(|r| r.get::<_, String>(0))
        })
        .await
    }

    /// The document's divergence: (operation, message), if any.
    async fn divergence(&self, id: Uuid) -> Option<(String, String)> {
        let rows = self
            .c
            .query(
                "SELECT operation, error_message FROM sync_queue
                  WHERE status = 'diverged' AND entity_id = $1",
                &[&id],
            )
            .await
            .unwrap();
        assert!(rows.len() <= 1, "at most one divergence row per document");
        rows.first().map(|r| (r.get(0), r.get(1)))
    }

    async fn wait_divergence(&self, id: Uuid, needle: &str) -> (String, String) {
        wait_for(
            &format!("a divergence containing {needle:?}"),
            WAIT,
            || async {
                self.divergence(id)
                    .await
                    .filter(|(_, m)| m.contains(needle))
            },
        )
        .await
    }

    /// Mikro's rows of everything posted (CHA, STH): must not move after posting.
    async fn mikro_rows(&self) -> (i64, i64) {
        (
            erp_count(
                &self.full,
                "SELECT COUNT(*) FROM dbo.CARI_HESAP_HAREKETLERI",
                &[],
            )
            .await,
            erp_count(&self.full, "SELECT COUNT(*) FROM dbo.STOK_HAREKETLERI", &[]).await,
        )
    }

    async fn stop(mut self) {
        if let Some(w) = self.worker.take() {
            w.stop().await;
        }
    }
}

/// Runs the close statement a divergence message proposes, exactly as written in it.
async fn close_as_the_message_says(c: &tokio_postgres::Client, msg: &str) {
    let at = msg
        .find("UPDATE sync_queue SET status = 'completed'")
        .unwrap_or_else(|| panic!("no close statement in {msg:?}"));
    let stmt = &msg[at..];
    let n = c.execute(stmt, &[]).await.expect(stmt);
    assert_eq!(n, 1, "{stmt}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_after_posting_are_recorded_never_written_to_mikro() {
    let env = Env::start().await;
    let c = &env.c;

    // Posting itself (the number written back by the worker) is not an edit.
    let sale = insert_sale(c, 2).await;
    let col = insert_collection(c, "150.00").await;
    let sale_no = env.posted_number(sale).await;
    let col_no = env.posted_number(col).await;
    wait_drained(c, WAIT).await;
    assert_eq!(
        count_status(c, "diverged").await,
        0,
        "write-back is not an edit"
    );
    // Nor is a change of a column posting does not read.
    c.execute(
        "UPDATE satislar SET guncelleme_tarihi = now() WHERE id = $1",
        &[&sale],
    )
    .await
    .unwrap();
    assert_eq!(count_status(c, "diverged").await, 0);
    let mikro = env.mikro_rows().await;

    // UPDATE of the amounts.
    c.execute(
        "UPDATE satislar SET toplam_tutar = 300, kdv_tutari = 50 WHERE id = $1",
        &[&sale],
    )
    .await
    .unwrap();
    let (op, msg) = env
        .divergence(sale)
        .await
        .expect("recorded in the same transaction");
    assert_eq!(op, "update");
    for needle in [
        sale.to_string().as_str(),
        sale_no.as_str(),
        "toplam_tutar 240.00 → 300.00",
        "kdv_tutari 40.00 → 50.00",
        "in the Mikro program",
    ] {
        assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
    }

    // UPDATE of a line: appended to the same row (one open divergence per document).
    c.execute(
        "UPDATE satis_kalemleri SET miktar = 3 WHERE satis_id = $1 AND sira_no = 1",
        &[&sale],
    )
    .await
    .unwrap();
    let (op, msg) = env.divergence(sale).await.unwrap();
    assert_eq!(op, "lines");
    assert!(msg.contains("toplam_tutar 240.00 → 300.00"), "{msg}");
    assert!(
        msg.contains("changed line 1 (STK-0001, 1 × 100.00): miktar 1 → 3"),
        "{msg}"
    );

    // A line added after posting.
    c.execute(
        "INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani, sira_no)
         VALUES ($1, $2, 5, 9.90, 20, 2)",
        &[&sale, &STOK_1.parse::<Uuid>().unwrap()],
    )
    .await
    .unwrap();
    let (_, msg) = env.divergence(sale).await.unwrap();
    assert!(msg.contains("added line 2 (STK-0001, 5 × 9.90)"), "{msg}");

    // A line removed.
    c.execute(
        "DELETE FROM satis_kalemleri WHERE satis_id = $1 AND sira_no = 0",
        &[&sale],
    )
    .await
    .unwrap();
    let (_, msg) = env.divergence(sale).await.unwrap();
    assert!(
        msg.contains("removed line 0 (STK-0001, 1 × 100.00)"),
        "{msg}"
    );

    // A collection's amount.
    c.execute("UPDATE tahsilatlar SET tutar = 175 WHERE id = $1", &[&col])
        .await
        .unwrap();
    let (op, msg) = env.divergence(col).await.unwrap();
    assert_eq!(op, "update");
    assert!(msg.contains("tutar 150.00 → 175.00"), "{msg}");
    assert!(msg.contains(&col_no), "{msg}");

    // Nothing went to Mikro, nothing was queued again.
    assert_eq!(env.mikro_rows().await, mikro);
    assert_eq!(count_status(c, "pending").await, 0);
    assert_eq!(count_status(c, "diverged").await, 2);

    // Closing a divergence as its message says.
    let (_, msg) = env.divergence(col).await.unwrap();
    close_as_the_message_says(c, &msg).await;
    assert_eq!(env.divergence(col).await, None);
    assert_eq!(count_status(c, "diverged").await, 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_reinserts_and_requeues_are_recorded() {
    let env = Env::start().await;
    let c = &env.c;
    let gone = insert_sale(c, 1).await;
    let again = insert_sale(c, 2).await;
    let same = insert_sale(c, 1).await;
    let requeued = insert_sale(c, 1).await;
    let gone_no = env.posted_number(gone).await;
    let again_no = env.posted_number(again).await;
    env.posted_number(same).await;
    let requeued_no = env.posted_number(requeued).await;
    wait_drained(c, WAIT).await;
    let mikro = env.mikro_rows().await;

    // DELETE (its lines go with it by ON DELETE CASCADE: one event, not three).
    c.execute("DELETE FROM satislar WHERE id = $1", &[&gone])
        .await
        .unwrap();
    let (op, msg) = env.divergence(gone).await.expect("delete recorded");
    assert_eq!(op, "delete");
    assert!(msg.contains("deleted on the web"), "{msg}");
    assert!(msg.contains(&format!("cancel {gone_no}")), "{msg}");
    assert!(!msg.contains("removed line"), "{msg}");

    // DELETE + re-INSERT with the same id and other content: the worker completes it from its
    // ledger (no second posting), and the comparison with what was posted is recorded.
    let snapshot: (String, String) = {
        let r = c
            .query_one(
                "SELECT cari_hesap_id::text, satis_tarihi::text FROM satislar WHERE id = $1",
                &[&again],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    c.batch_execute(&format!(
        "BEGIN;
         DELETE FROM satislar WHERE id = '{again}';
         INSERT INTO satislar (id, cari_hesap_id, satis_tarihi, odeme_sekli, ara_toplam, kdv_tutari, toplam_tutar)
         VALUES ('{again}', '{cari}', '{date}', 'vadeli', 300, 60, 360);
         INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani, kdv_tutari, toplam_tutar, sira_no)
         VALUES ('{again}', '{STOK_1}', 1, 100, 20, 20, 100, 0),
                ('{again}', '{STOK_1}', 2, 100, 20, 40, 200, 1);
         COMMIT;",
        cari = snapshot.0,
        date = snapshot.1
    ))
    .await
    .unwrap();
    let (op, msg) = env.wait_divergence(again, "re-inserted").await;
    assert_eq!(op, "reinsert");
    for needle in [
        "deleted on the web",
        "re-inserted on the web with other content",
        "toplam_tutar 240.00 → 360.00",
        "changed line 1 (STK-0001, 1 × 100.00): kdv_tutari 20.00 → 40.00, miktar 1 → 2",
        again_no.as_str(),
    ] {
        assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
    }
    assert_eq!(
        env.posted_number(again).await,
        again_no,
        "the ledger's number"
    );

    // DELETE + re-INSERT of the same content: recorded, and says nothing differs.
    let copy = c
        .query_one(
            "SELECT cari_hesap_id::text, satis_tarihi::text FROM satislar WHERE id = $1",
            &[&same],
        )
        .await
        .unwrap();
    let (cari, date): (String, String) = (copy.get(0), copy.get(1));
    c.batch_execute(&format!(
        "BEGIN;
         DELETE FROM satislar WHERE id = '{same}';
         INSERT INTO satislar (id, cari_hesap_id, satis_tarihi, odeme_sekli, ara_toplam, kdv_tutari, toplam_tutar)
         VALUES ('{same}', '{cari}', '{date}', 'vadeli', 100, 20, 120);
         INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani, kdv_tutari, toplam_tutar, sira_no)
         VALUES ('{same}', '{STOK_1}', 1, 100, 20, 20, 100, 0);
         COMMIT;"
    ))
    .await
    .unwrap();
    let (_, msg) = env.wait_divergence(same, "same content").await;
    assert!(msg.contains("nothing to change in Mikro"), "{msg}");

    // An operator re-queue of a posted document (the operators' SQL, on completed rows).
    c.execute(
        "UPDATE sync_queue SET status = 'pending', retry_count = 0
          WHERE status = 'completed' AND entity_id = $1",
        &[&requeued],
    )
    .await
    .unwrap();
    let (op, msg) = env.divergence(requeued).await.expect("re-queue recorded");
    assert_eq!(op, "requeue");
    assert!(msg.contains("re-queued by an operator"), "{msg}");
    assert!(msg.contains(&requeued_no), "{msg}");
    wait_drained(c, WAIT).await;

    // Mikro: exactly what was posted, nothing more.
    assert_eq!(env.mikro_rows().await, mikro);
    assert_eq!(count_status(c, "diverged").await, 4);
    assert_eq!(count_status(c, "failed").await, 0);

    // Counted where operators look: status, doctor, and the queue statistics behind
    // mikro_sync_queue_depth{status="diverged"}.
    assert_eq!(mikro_sync::queue::stats(c).await.unwrap().diverged, 4);
    let st = mikro_sync::cli::status::gather(c, 10).await.unwrap();
    let text = mikro_sync::cli::status::render(&st);
    let total: Vec<&str> = text
        .lines()
        .find(|l| l.trim_start().starts_with("total"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(total.last(), Some(&"4"), "{text}");
    assert!(
        text.contains("Edited or deleted on the web after posting (4; Mikro was not changed)"),
        "{text}"
    );
    assert!(text.contains(&format!("satis {gone} [delete]")), "{text}");
    let cfg = mikro_sync::config::Config::from_map(&std::collections::BTreeMap::from([(
        "MIKRO_SYNC_PG_URL".to_string(),
        env.full.url.clone(),
    )]))
    .unwrap();
    let doctor = mikro_sync::doctor::render(&mikro_sync::doctor::checks(&cfg, false).await);
    assert!(
        doctor.contains("divergences: 4 document(s) edited or deleted on the web after posting"),
        "{doctor}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_before_posting_are_not_divergences() {
    let full = full_env().await;
    let c = connect(&full.url).await;
    // No worker yet: the web app edits and deletes freely.
    let s = insert_sale(&c, 2).await;
    let d = insert_sale(&c, 1).await;
    c.batch_execute(&format!(
        "UPDATE satislar SET notlar = 'kapıda ödeme' WHERE id = '{s}';
         UPDATE satis_kalemleri SET miktar = 1 WHERE satis_id = '{s}';
         INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani, sira_no)
         VALUES ('{s}', '{STOK_1}', 1, 0, 20, 9);
         DELETE FROM satis_kalemleri WHERE satis_id = '{s}' AND sira_no = 9;
         DELETE FROM satislar WHERE id = '{d}';"
    ))
    .await
    .unwrap();
    assert_eq!(count_status(&c, "diverged").await, 0);
    let n: i64 = c
        .query_one("SELECT count(*) FROM int_divergence_snapshot", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

/// Changes made after the claim read a document and before its number is written back: the
/// document is posted as the claim read it, so each change is a divergence, recorded by the
/// completion's check (`mikro_sync_posted_check`); a change of a column posting does not read is
/// not. Every document is in Mikro exactly once, and the number is written back to every one
/// that still exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_while_posting_are_recorded_at_the_write_back() {
    let (env, gate) = Env::start_gated().await;
    let c = &env.c;
    let amount = insert_sale(c, 2).await;
    let lines = insert_sale(c, 2).await;
    let deleted = insert_sale(c, 1).await;
    let untouched = insert_sale(c, 1).await;
    let col_amount = insert_collection(c, "150.00").await;
    let col_deleted = insert_collection(c, "60.00").await;
    let col_untouched = insert_collection(c, "70.00").await;
    let all = [
        amount,
        lines,
        deleted,
        untouched,
        col_amount,
        col_deleted,
        col_untouched,
    ];
    gate.wait_arrived(&all).await;

    // (a) a header amount; (b) a line changed, one removed, one added; (c) deleted; (d) only a
    // column posting does not read. The same for collections.
    c.batch_execute(&format!(
        "UPDATE satislar SET toplam_tutar = 300, kdv_tutari = 50 WHERE id = '{amount}';
         UPDATE satis_kalemleri SET miktar = 3 WHERE satis_id = '{lines}' AND sira_no = 0;
         DELETE FROM satis_kalemleri WHERE satis_id = '{lines}' AND sira_no = 1;
         INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani, sira_no)
         VALUES ('{lines}', '{STOK_1}', 5, 9.90, 20, 2);
         DELETE FROM satislar WHERE id = '{deleted}';
         UPDATE satislar SET guncelleme_tarihi = now() + interval '1 hour' WHERE id = '{untouched}';
         UPDATE tahsilatlar SET tutar = 175 WHERE id = '{col_amount}';
         DELETE FROM tahsilatlar WHERE id = '{col_deleted}';
         UPDATE tahsilatlar SET guncelleme_tarihi = now() + interval '1 hour'
          WHERE id = '{col_untouched}';"
    ))
    .await
    .unwrap();
    assert_eq!(
        count_status(c, "diverged").await,
        0,
        "not posted yet: no trigger records these"
    );
    gate.open();
    wait_drained(c, WAIT).await;

    // Exactly once in Mikro, deleted or not.
    for (id, ledger, cha) in erp_postings(&env.full, &all).await {
        assert_eq!((ledger, cha), (1, 1), "document {id} in Mikro exactly once");
    }
    let amount_no = env.posted_number(amount).await;
    let (op, msg) = env.divergence(amount).await.expect("(a) recorded");
    assert_eq!(op, "update");
    for needle in [
        amount.to_string().as_str(),
        amount_no.as_str(),
        "changed on the web while it was being posted",
        "toplam_tutar 240.00 → 300.00",
        "kdv_tutari 40.00 → 50.00",
        &format!("change {amount_no} in the Mikro program to match"),
    ] {
        assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
    }

    let lines_no = env.posted_number(lines).await;
    let (op, msg) = env.divergence(lines).await.expect("(b) recorded");
    assert_eq!(op, "lines");
    for needle in [
        lines_no.as_str(),
        "changed on the web while it was being posted",
        "changed line 0 (STK-0001, 1 × 100.00): miktar 1 → 3",
        "removed line 1 (STK-0001, 1 × 100.00)",
        "added line 2 (STK-0001, 5 × 9.90)",
        &format!("change {lines_no} in the Mikro program to match"),
    ] {
        assert!(msg.contains(needle), "{msg:?} should contain {needle:?}");
    }

    let (op, msg) = env.divergence(deleted).await.expect("(c) recorded");
    assert_eq!(op, "delete");
    assert!(
        msg.contains("deleted on the web while it was being posted"),
        "{msg}"
    );
    assert!(msg.contains(&deleted.to_string()), "{msg}");
    assert!(
        msg.contains("cancel ") && msg.contains("in the Mikro program"),
        "{msg}"
    );

    env.posted_number(untouched).await;
    assert_eq!(env.divergence(untouched).await, None, "(d) not an edit");

    let col_no = env.posted_number(col_amount).await;
    let (op, msg) = env.divergence(col_amount).await.expect("collection amount");
    assert_eq!(op, "update");
    assert!(msg.contains("tutar 150.00 → 175.00"), "{msg}");
    assert!(msg.contains(&col_no), "{msg}");
    let (op, _) = env
        .divergence(col_deleted)
        .await
        .expect("collection deleted");
    assert_eq!(op, "delete");
    env.posted_number(col_untouched).await;
    assert_eq!(env.divergence(col_untouched).await, None);

    assert_eq!(count_status(c, "diverged").await, 5);
    assert_eq!(count_status(c, "failed").await, 0);
    env.stop().await;
}

/// A line written in a transaction that is still open when the number is written back: the
/// line trigger share-locks the sale, so the write-back waits for that transaction and its check
/// then sees the line (without the lock neither side would see the other: silent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_committed_during_the_write_back_is_recorded() {
    let (env, gate) = Env::start_gated().await;
    let c = &env.c;
    let sale = insert_sale(c, 1).await;
    gate.wait_arrived(&[sale]).await;
    let mut w = connect(&env.full.url).await;
    let tx = w.transaction().await.unwrap();
    tx.execute(
        "INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani, sira_no)
         VALUES ($1, $2, 4, 2.50, 20, 1)",
        &[&sale, &STOK_1.parse::<Uuid>().unwrap()],
    )
    .await
    .unwrap();
    gate.open();
    // The completion waits for this transaction's lock on the sale (without the lock it would
    // write the number back now, and the line would go unrecorded).
    let blocked = wait_for("the write-back, waiting or done", WAIT, || async {
        let r = c
            .query_one(
                "SELECT (SELECT count(*) FROM pg_stat_activity
                          WHERE application_name = 'mikro-sync completer'
                            AND wait_event_type = 'Lock') > 0,
                        (SELECT fatura_sira_no IS NOT NULL FROM satislar WHERE id = $1)",
                &[&sale],
            )
            .await
            .unwrap();
        let (waiting, written): (bool, bool) = (r.get(0), r.get(1));
        (waiting || written).then_some(waiting)
    })
    .await;
    tx.commit().await.unwrap();
    assert!(
        blocked,
        "the write-back did not wait for the open line transaction"
    );
    let no = env.posted_number(sale).await;
    let (op, msg) = env.wait_divergence(sale, "added line").await;
    assert_eq!(op, "lines");
    assert!(msg.contains("added line 1 (STK-0001, 4 × 2.50)"), "{msg}");
    assert!(msg.contains(&no), "{msg}");
    for (id, ledger, cha) in erp_postings(&env.full, &[sale]).await {
        assert_eq!((ledger, cha), (1, 1), "document {id} in Mikro exactly once");
    }
    env.stop().await;
}
