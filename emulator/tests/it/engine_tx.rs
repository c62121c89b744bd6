//! Transactions, statement-level atomicity, XACT_ABORT, deadlocks, UPDLOCK/HOLDLOCK numbering
//! and sp_getapplock, driving `Session`s directly.

use crate::engine_support;

use engine_support::*;
use mikro_emulator::value::{Output, SqlType, TxEvent, Value};

fn tx_events(out: &[Output]) -> Vec<&'static str> {
    out.iter()
        .filter_map(|o| match o {
            Output::Tx(TxEvent::Begin(_)) => Some("begin"),
            Output::Tx(TxEvent::Commit(_)) => Some("commit"),
            Output::Tx(TxEvent::Rollback(_)) => Some("rollback"),
            _ => None,
        })
        .collect()
}

fn return_status(out: &[Output]) -> Vec<i32> {
    out.iter()
        .filter_map(|o| match o {
            Output::ReturnStatus(r) => Some(*r),
            _ => None,
        })
        .collect()
}

async fn count(s: &mut mikro_emulator::engine::Session, sql: &str) -> i64 {
    match scalar(&ok(s, sql).await).1 {
        Value::Int(n) => n,
        v => panic!("{v:?}"),
    }
}

#[tokio::test]
async fn nesting_rollback_and_statement_atomicity() {
    let db = db().await;
    let mut s = db.session().await;
    let mut other = db.session().await;
    ok(&mut s, "CREATE TABLE K (id int NOT NULL PRIMARY KEY)").await;

    let out = ok(
        &mut s,
        "BEGIN TRAN; BEGIN TRANSACTION; INSERT INTO K VALUES (1); SELECT @@TRANCOUNT AS tc",
    )
    .await;
    assert_eq!(tx_events(&out), vec!["begin"]);
    assert_eq!(scalar(&out).1, Value::Int(2));
    assert_ne!(s.transaction_descriptor(), 0);
    assert_eq!(
        count(&mut other, "SELECT COUNT(*) FROM K").await,
        0,
        "uncommitted row visible"
    );
    // IF on @@TRANCOUNT (answered by the engine without PostgreSQL) sees the nesting level.
    let out = ok(
        &mut s,
        "DECLARE @x int = 0; IF @@TRANCOUNT > 1 SET @x = 1; IF @@TRANCOUNT >= 3 SET @x = 2; \
         SELECT @x AS x",
    )
    .await;
    assert_eq!(scalar(&out).1, Value::Int(1));
    let out = ok(&mut s, "COMMIT TRAN; SELECT @@TRANCOUNT").await;
    assert_eq!(
        tx_events(&out),
        Vec::<&str>::new(),
        "inner COMMIT only decrements"
    );
    assert_eq!(scalar(&out).1, Value::Int(1));
    let out = ok(&mut s, "ROLLBACK").await;
    assert_eq!(tx_events(&out), vec!["rollback"]);
    assert_eq!(s.transaction_descriptor(), 0);
    assert_eq!(count(&mut s, "SELECT COUNT(*) FROM K").await, 0);

    // A failed statement does not doom the transaction (XACT_ABORT OFF).
    let out = run(
        &mut s,
        "BEGIN TRAN; INSERT INTO K VALUES (1); INSERT INTO K VALUES (1); INSERT INTO K VALUES (2); COMMIT",
    )
    .await;
    assert_eq!(errors(&out), vec![2627]);
    assert_eq!(tx_events(&out), vec!["begin", "commit"]);
    assert_eq!(count(&mut other, "SELECT COUNT(*) FROM K").await, 2);

    // XACT_ABORT ON: the error rolls back the transaction and aborts the batch.
    let out = run(
        &mut s,
        "SET XACT_ABORT ON; BEGIN TRAN; INSERT INTO K VALUES (3); INSERT INTO K VALUES (1); INSERT INTO K VALUES (4); COMMIT",
    )
    .await;
    assert_eq!(errors(&out), vec![2627]);
    assert_eq!(tx_events(&out), vec!["begin", "rollback"]);
    assert_eq!(s.trancount(), 0);
    assert_eq!(count(&mut other, "SELECT COUNT(*) FROM K").await, 2);

    // Named transactions: the name is accepted.
    let out = ok(
        &mut s,
        "BEGIN TRANSACTION T1; SELECT @@TRANCOUNT AS tc; COMMIT TRANSACTION T1",
    )
    .await;
    assert_eq!(tx_events(&out), vec!["begin", "commit"]);
    // SELECT alias = expr.
    let out = ok(&mut s, "SELECT tc = @@TRANCOUNT").await;
    assert_eq!(rowset(&out, 0).0[0].name, "tc");
    // COMMIT without BEGIN.
    let out = run(&mut s, "COMMIT").await;
    assert_eq!(errors(&out), vec![3902]);

    // Transaction Manager requests, commit with begin-new (python-tds style).
    let mut out = Vec::new();
    s.begin(&mut out).await;
    ok(&mut s, "SET XACT_ABORT OFF; INSERT INTO K VALUES (5)").await;
    s.commit(true, &mut out).await;
    ok(&mut s, "INSERT INTO K VALUES (6)").await;
    s.rollback(false, &mut out).await;
    assert_eq!(
        tx_events(&out),
        vec!["begin", "commit", "begin", "rollback"]
    );
    assert_eq!(count(&mut other, "SELECT COUNT(*) FROM K").await, 3);

    // Closing a session rolls its transaction back.
    ok(&mut s, "BEGIN TRAN; INSERT INTO K VALUES (7)").await;
    s.close().await;
    assert_eq!(count(&mut other, "SELECT COUNT(*) FROM K").await, 3);
}

#[tokio::test]
async fn deadlock_is_1205_and_rolls_back() {
    let db = db().await;
    let mut a = db.session().await;
    let mut b = db.session().await;
    ok(&mut a, "CREATE TABLE D (id int NOT NULL PRIMARY KEY, v int NOT NULL); INSERT INTO D VALUES (1, 0), (2, 0)").await;
    ok(&mut a, "BEGIN TRAN; UPDATE D SET v = 1 WHERE id = 1").await;
    ok(&mut b, "BEGIN TRAN; UPDATE D SET v = 2 WHERE id = 2").await;
    let (oa, ob) = tokio::join!(
        run(&mut a, "UPDATE D SET v = 1 WHERE id = 2"),
        run(&mut b, "UPDATE D SET v = 2 WHERE id = 1")
    );
    let (victim, survivor) = if errors(&oa) == vec![1205] {
        (oa, ob)
    } else {
        (ob, oa)
    };
    assert_eq!(errors(&victim), vec![1205], "{victim:?} / {survivor:?}");
    assert!(errors(&survivor).is_empty());
    assert_eq!(tx_events(&victim), vec!["rollback"]);
    match victim.iter().find_map(|o| match o {
        Output::Error(e) => Some(e.class),
        _ => None,
    }) {
        Some(c) => assert_eq!(c, 13),
        None => unreachable!(),
    }
    assert_eq!(a.trancount() + b.trancount(), 1);
}

#[tokio::test]
async fn updlock_holdlock_max_plus_one_serialises() {
    let db = db().await;
    let mut setup = db.session().await;
    ok(
        &mut setup,
        "CREATE TABLE N (seri nvarchar(5) NOT NULL, sira int NOT NULL, worker int NOT NULL)",
    )
    .await;
    let worker = |w: i64| {
        let engine = db.engine.clone();
        async move {
            let mut s = engine.session().await.unwrap();
            for _ in 0..25 {
                let out = ok(&mut s, "BEGIN TRAN").await;
                assert_eq!(tx_events(&out), vec!["begin"]);
                let out = ok_p(
                    &mut s,
                    "SELECT ISNULL(MAX(sira),0)+1 FROM N WITH (UPDLOCK, HOLDLOCK) WHERE seri = @P1",
                    &[p("@P1", SqlType::NVarChar(Some(4000)), txt("A"))],
                )
                .await;
                let next = scalar(&out).1;
                tokio::task::yield_now().await;
                ok_p(
                    &mut s,
                    "INSERT INTO N (seri, sira, worker) VALUES (@P1, @P2, @P3)",
                    &[
                        p("@P1", SqlType::NVarChar(Some(4000)), txt("A")),
                        p("@P2", SqlType::Int, next),
                        p("@P3", SqlType::Int, Value::Int(w)),
                    ],
                )
                .await;
                ok(&mut s, "COMMIT").await;
            }
        }
    };
    tokio::join!(worker(1), worker(2), worker(3));
    let out = ok(
        &mut setup,
        "SELECT COUNT(*) AS n, COUNT(DISTINCT sira) AS d, MAX(sira) AS m FROM N",
    )
    .await;
    let (_, r) = rowset(&out, 0);
    assert_eq!(
        r[0],
        vec![Value::Int(75), Value::Int(75), Value::Int(75)],
        "duplicate numbers"
    );
}

#[tokio::test]
async fn sp_getapplock_return_codes() {
    let db = db().await;
    let mut a = db.session().await;
    let mut b = db.session().await;
    // Transaction owner without a transaction: -999.
    let out = run(
        &mut a,
        "EXEC sp_getapplock @Resource = N'seri-A', @LockMode = 'Exclusive'",
    )
    .await;
    assert_eq!(return_status(&out), vec![-999]);
    assert_eq!(errors(&out), vec![1223]);

    let out = ok(
        &mut a,
        "BEGIN TRAN; DECLARE @rc int; EXEC @rc = sp_getapplock @Resource = N'seri-A', @LockMode = 'Exclusive', @LockOwner = 'Transaction', @LockTimeout = 0; SELECT @rc AS rc",
    )
    .await;
    assert_eq!(scalar(&out).1, Value::Int(0));
    let out = ok(
        &mut b,
        "BEGIN TRAN; EXEC sp_getapplock N'seri-A', 'Exclusive', 'Transaction', 0",
    )
    .await;
    assert_eq!(return_status(&out), vec![-1]);
    let out = ok(
        &mut b,
        "EXEC sp_getapplock @Resource = N'seri-A', @LockMode = 'Exclusive', @LockTimeout = 50",
    )
    .await;
    assert_eq!(return_status(&out), vec![-1]);
    // Another resource is free.
    let out = ok(
        &mut b,
        "EXEC sp_getapplock @Resource = N'seri-B', @LockMode = 'Exclusive'",
    )
    .await;
    assert_eq!(return_status(&out), vec![0]);
    // Waiting succeeds once A commits: 1 (granted after waiting).
    let (ob, _) = tokio::join!(
        run(&mut b, "EXEC sp_getapplock @Resource = N'seri-A', @LockMode = 'Exclusive', @LockTimeout = 5000"),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            ok(&mut a, "COMMIT").await
        }
    );
    assert_eq!(return_status(&ob), vec![1], "{ob:?}");
    ok(&mut b, "COMMIT").await;
    // After B's commit the transaction locks are gone.
    let out = ok(&mut a, "BEGIN TRAN; EXEC sp_getapplock @Resource = N'seri-A', @LockMode = 'Exclusive', @LockTimeout = 0; ROLLBACK").await;
    assert_eq!(return_status(&out), vec![0]);
    // Session owner + release.
    let out = ok(
        &mut a,
        "EXEC sp_getapplock @Resource = N'sess', @LockMode = 'Exclusive', @LockOwner = 'Session'",
    )
    .await;
    assert_eq!(return_status(&out), vec![0]);
    let out = ok(&mut b, "EXEC sp_getapplock @Resource = N'sess', @LockMode = 'Exclusive', @LockOwner = 'Session', @LockTimeout = 0").await;
    assert_eq!(return_status(&out), vec![-1]);
    let out = ok(
        &mut a,
        "EXEC sp_releaseapplock @Resource = N'sess', @LockOwner = 'Session'",
    )
    .await;
    assert_eq!(return_status(&out), vec![0]);
    let out = run(
        &mut a,
        "EXEC sp_releaseapplock @Resource = N'sess', @LockOwner = 'Session'",
    )
    .await;
    assert_eq!(return_status(&out), vec![-999]);
    let out = ok(&mut b, "EXEC sp_getapplock @Resource = N'sess', @LockMode = 'Exclusive', @LockOwner = 'Session', @LockTimeout = 0").await;
    assert_eq!(return_status(&out), vec![0]);
    // RPC-style call with parameters (as the protocol layer forwards a direct RPC).
    let out = ok_p(
        &mut a,
        "BEGIN TRAN; EXEC sp_getapplock @Resource = @Resource, @LockMode = @LockMode",
        &[
            p("@Resource", SqlType::NVarChar(Some(255)), txt("rpc-res")),
            p("@LockMode", SqlType::NVarChar(Some(32)), txt("Exclusive")),
        ],
    )
    .await;
    assert_eq!(return_status(&out), vec![0]);
}

#[tokio::test]
async fn implicit_transactions() {
    let db = db().await;
    let mut s = db.session().await;
    let mut other = db.session().await;
    ok(&mut s, "CREATE TABLE I (id int NOT NULL)").await;
    let out = ok(
        &mut s,
        "SET IMPLICIT_TRANSACTIONS ON; SELECT @@TRANCOUNT AS a",
    )
    .await;
    assert_eq!(
        scalar(&out).1,
        Value::Int(0),
        "a SELECT without a table opens nothing"
    );
    let out = ok(&mut s, "INSERT INTO I VALUES (1); SELECT @@TRANCOUNT AS b").await;
    assert_eq!(tx_events(&out), vec!["begin"]);
    assert_eq!(scalar(&out).1, Value::Int(1));
    assert_eq!(count(&mut other, "SELECT COUNT(*) FROM I").await, 0);
    let out = ok(&mut s, "COMMIT; SET IMPLICIT_TRANSACTIONS OFF").await;
    assert_eq!(tx_events(&out), vec!["commit"]);
    assert_eq!(count(&mut other, "SELECT COUNT(*) FROM I").await, 1);
}

#[tokio::test]
async fn ddl_is_transactional() {
    let db = db().await;
    let mut s = db.session().await;
    ok(
        &mut s,
        "BEGIN TRAN; CREATE TABLE Z (a int NOT NULL); INSERT INTO Z VALUES (1)",
    )
    .await;
    let out = ok(&mut s, "SELECT COUNT(*) FROM Z").await;
    assert_eq!(scalar(&out).1, Value::Int(1));
    ok(&mut s, "ROLLBACK").await;
    let out = run(&mut s, "SELECT * FROM Z").await;
    assert_eq!(errors(&out), vec![208]);
    ok(
        &mut s,
        "CREATE TABLE Z (a int NOT NULL, b nvarchar(3) NULL)",
    )
    .await;
    let out = ok(&mut s, "SELECT * FROM Z").await;
    assert_eq!(rowset(&out, 0).0.len(), 2);
    let out = run(&mut s, "CREATE TABLE Z (a int)").await;
    assert_eq!(errors(&out), vec![2714]);
    ok(&mut s, "DROP TABLE Z").await;
    let out = run(&mut s, "DROP TABLE Z").await;
    assert_eq!(errors(&out), vec![3701]);
    ok(&mut s, "DROP TABLE IF EXISTS Z").await;
}

#[tokio::test]
async fn save_transaction_and_rollback_to_it() {
    let db = db().await;
    let mut s = db.session().await;
    ok(&mut s, "CREATE TABLE SV (id int NOT NULL PRIMARY KEY)").await;
    let out = run(
        &mut s,
        "BEGIN TRAN T; INSERT INTO SV VALUES (1); SAVE TRANSACTION s1; INSERT INTO SV VALUES (2); INSERT INTO SV VALUES (2);
         INSERT INTO SV VALUES (3); ROLLBACK TRANSACTION s1; INSERT INTO SV VALUES (4); SELECT @@TRANCOUNT AS tc",
    )
    .await;
    assert_eq!(errors(&out), vec![2627]);
    assert_eq!(scalar(&out).1, Value::Int(1));
    ok(&mut s, "COMMIT TRAN T").await;
    let out = ok(&mut s, "SELECT id FROM SV ORDER BY id").await;
    assert_eq!(
        rowset(&out, 0).1,
        vec![vec![Value::Int(1)], vec![Value::Int(4)]]
    );
    // ROLLBACK TRAN <transaction name> rolls everything back.
    let out = ok(
        &mut s,
        "BEGIN TRAN T2; INSERT INTO SV VALUES (5); ROLLBACK TRAN T2; SELECT @@TRANCOUNT",
    )
    .await;
    assert_eq!(tx_events(&out), vec!["begin", "rollback"]);
    assert_eq!(scalar(&out).1, Value::Int(0));
    let out = run(&mut s, "SAVE TRAN x").await;
    assert_eq!(errors(&out), vec![628]);
}

#[tokio::test]
async fn alter_table_add_and_drop_columns() {
    let db = db().await;
    let mut s = db.session().await;
    ok(
        &mut s,
        "CREATE TABLE AL (id int NOT NULL PRIMARY KEY); INSERT INTO AL VALUES (1)",
    )
    .await;
    ok(&mut s, "ALTER TABLE dbo.AL ADD Aciklama nvarchar(10) NOT NULL CONSTRAINT DF_AL_a DEFAULT N'yok'; ALTER TABLE AL ADD Flag tinyint NULL").await;
    let out = ok(&mut s, "SELECT * FROM AL").await;
    let (c, r) = rowset(&out, 0);
    let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["id", "Aciklama", "Flag"]);
    assert_eq!(c[2].ty, SqlType::TinyInt);
    assert_eq!(r[0], vec![Value::Int(1), txt("yok"), Value::Null]);
    let out = run(&mut s, "INSERT INTO AL (id, Flag) VALUES (2, 300)").await;
    assert_eq!(errors(&out), vec![220]);
    ok(&mut s, "ALTER TABLE AL DROP COLUMN Flag").await;
    let out = ok(&mut s, "SELECT * FROM AL").await;
    assert_eq!(rowset(&out, 0).0.len(), 2);
    let out = run(&mut s, "ALTER TABLE AL DROP COLUMN Flag").await;
    assert_eq!(errors(&out), vec![4924]);
    ok(&mut s, "ALTER TABLE AL ADD Flag2 bit NOT NULL DEFAULT 0").await;
    let out = ok(&mut s, "SELECT Flag2 FROM AL").await;
    assert_eq!(rowset(&out, 0).1[0][0], Value::Bool(false));
}

#[tokio::test]
async fn canceller_stops_a_blocked_statement() {
    let db = db().await;
    let mut a = db.session().await;
    let mut b = db.session().await;
    ok(&mut a, "CREATE TABLE CX (id int NOT NULL PRIMARY KEY, v int NOT NULL); INSERT INTO CX VALUES (1, 0)").await;
    ok(&mut a, "BEGIN TRAN; UPDATE CX SET v = 1 WHERE id = 1").await;
    ok(&mut b, "BEGIN TRAN").await;
    let canc = b.canceller();
    let (out, _) = tokio::join!(
        run(
            &mut b,
            "UPDATE CX SET v = 2 WHERE id = 1; SELECT 1 AS after"
        ),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            canc.cancel().await;
        }
    );
    assert_eq!(errors(&out), vec![3617]);
    assert!(
        out.iter().all(|o| !matches!(o, Output::Rows { .. })),
        "the batch stops"
    );
    // B's transaction is still usable.
    assert_eq!(b.trancount(), 1);
    let out = ok(&mut b, "SELECT COUNT(*) FROM CX").await;
    assert_eq!(scalar(&out).1, Value::Int(1));
    ok(&mut b, "ROLLBACK").await;
    ok(&mut a, "COMMIT").await;
}

/// Under XACT_ABORT ON inside a transaction the engine pipelines DML (sends it without waiting
/// for the answer): counts, SCOPE_IDENTITY, @@ROWCOUNT, the first error and the rollback must
/// be exactly as if every statement had run alone.
#[tokio::test]
async fn pipelined_dml_under_xact_abort() {
    let db = db().await;
    let mut s = db.session().await;
    let mut other = db.session().await;
    ok(
        &mut s,
        "CREATE TABLE Q (id int IDENTITY(1,1) NOT NULL PRIMARY KEY, code int NOT NULL UNIQUE, \
         recid int NOT NULL)",
    )
    .await;
    const BATCH: &str = "SET XACT_ABORT ON; BEGIN TRAN; \
        INSERT INTO Q (code, recid) VALUES (@P1, 0); \
        UPDATE Q SET recid = id WHERE id = SCOPE_IDENTITY(); \
        INSERT INTO Q (code, recid) VALUES (@P2, 0); \
        UPDATE Q SET recid = id WHERE id = SCOPE_IDENTITY(); \
        INSERT INTO Q (code, recid) VALUES (@P3, 0); \
        SELECT @@ROWCOUNT AS rc, CAST(SCOPE_IDENTITY() AS int) AS si; \
        COMMIT TRAN; SET XACT_ABORT OFF";
    let ps = |a: i64, b: i64, c: i64| {
        vec![
            p("@P1", SqlType::Int, Value::Int(a)),
            p("@P2", SqlType::Int, Value::Int(b)),
            p("@P3", SqlType::Int, Value::Int(c)),
        ]
    };
    let dones_before_error = |out: &[Output]| {
        out.iter()
            .take_while(|o| !matches!(o, Output::Error(_)))
            .filter(|o| matches!(o, Output::Done { rows: Some(1) }))
            .count()
    };
    // First run prepares the statements; the second one is pipelined.
    for (round, (a, b, c)) in [(1, 2, 3), (4, 5, 6)].into_iter().enumerate() {
        let out = ok_p(&mut s, BATCH, &ps(a, b, c)).await;
        let (_, rows) = rowset(&out, 0);
        let last = i64::try_from(round * 3 + 3).unwrap();
        assert_eq!(rows, vec![vec![Value::Int(1), Value::Int(last)]], "{out:?}");
        assert_eq!(dones_before_error(&out), 6, "{out:?}");
        assert_eq!(tx_events(&out), vec!["begin", "commit"]);
    }
    assert_eq!(
        count(
            &mut other,
            "SELECT COUNT(*) FROM Q WHERE recid = id AND id <> 3 AND id <> 6"
        )
        .await,
        4
    );
    // The third INSERT fails: the two statement pairs before it are counted, then its error,
    // then the rollback; the SELECT and COMMIT after it never run.
    let out = run_p(&mut s, BATCH, &ps(7, 8, 2)).await;
    assert_eq!(errors(&out), vec![2627], "{out:?}");
    assert_eq!(dones_before_error(&out), 4, "{out:?}");
    assert_eq!(tx_events(&out), vec!["begin", "rollback"]);
    assert!(!out.iter().any(|o| matches!(o, Output::Rows { .. })));
    assert_eq!(s.trancount(), 0);
    // A failure in the middle of the pipeline: one error (not one per later statement).
    let out = run_p(&mut s, BATCH, &ps(9, 9, 10)).await;
    assert_eq!(errors(&out), vec![2627], "{out:?}");
    assert_eq!(dones_before_error(&out), 2, "{out:?}");
    assert_eq!(s.trancount(), 0);
    assert_eq!(count(&mut other, "SELECT COUNT(*) FROM Q").await, 6);
    // SCOPE_IDENTITY() of a pipelined multi-row INSERT, with an INSERT into a table without
    // IDENTITY in between: the last row of the identity INSERT.
    ok(&mut s, "CREATE TABLE N (v int NOT NULL)").await;
    const BATCH2: &str = "SET XACT_ABORT ON; BEGIN TRAN; UPDATE N SET v = v WHERE v < 0; \
        INSERT INTO Q (code, recid) VALUES (@P1, 0), (@P2, 0); \
        INSERT INTO N (v) VALUES (@P1); \
        UPDATE Q SET recid = -1 WHERE id = SCOPE_IDENTITY(); \
        COMMIT TRAN; SET XACT_ABORT OFF";
    for (a, b) in [(20, 21), (22, 23), (24, 25)] {
        ok_p(
            &mut s,
            BATCH2,
            &[
                p("@P1", SqlType::Int, Value::Int(a)),
                p("@P2", SqlType::Int, Value::Int(b)),
            ],
        )
        .await;
    }
    assert_eq!(
        count(
            &mut other,
            "SELECT COUNT(*) FROM Q WHERE recid = -1 AND code IN (21, 23, 25)"
        )
        .await,
        3
    );
    assert_eq!(
        count(&mut other, "SELECT COUNT(*) FROM Q WHERE recid = -1").await,
        3
    );
    ok(&mut s, "DELETE FROM Q WHERE code >= 20").await;
    // The session is healthy afterwards.
    let out = ok_p(&mut s, BATCH, &ps(11, 12, 13)).await;
    assert_eq!(rowset(&out, 0).1[0][0], Value::Int(1));
    assert_eq!(
        count(
            &mut other,
            "SELECT COUNT(*) FROM Q WHERE code IN (11, 12, 13)"
        )
        .await,
        3
    );
}

/// The outermost COMMIT right behind pipelined DML is sent without waiting for the DML's
/// answers. A failure in that DML must still end as under XACT_ABORT ON: its error, then the
/// rollback (nothing committed, the statements after COMMIT not run), and the transaction's
/// applock released.
#[tokio::test]
async fn commit_pipelined_behind_dml() {
    let db = db().await;
    let mut s = db.session().await;
    let mut other = db.session().await;
    ok(&mut s, "CREATE TABLE R (code int NOT NULL UNIQUE)").await;
    const BATCH: &str = "DECLARE @rc int; SET XACT_ABORT ON; BEGIN TRAN; \
        EXEC @rc = sp_getapplock @Resource = 'r-series', @LockMode = 'Exclusive', \
        @LockOwner = 'Transaction', @LockTimeout = 1000; \
        INSERT INTO R (code) VALUES (@P1); \
        INSERT INTO R (code) VALUES (@P2); \
        COMMIT TRAN; SELECT @rc AS rc";
    let ps = |a: i64, b: i64| {
        vec![
            p("@P1", SqlType::Int, Value::Int(a)),
            p("@P2", SqlType::Int, Value::Int(b)),
        ]
    };
    // The first run prepares the statements; later ones pipeline them and the COMMIT.
    for (a, b) in [(1, 2), (3, 4), (5, 6)] {
        let out = ok_p(&mut s, BATCH, &ps(a, b)).await;
        assert_eq!(tx_events(&out), vec!["begin", "commit"], "{out:?}");
        assert_eq!(rowset(&out, 0).1, vec![vec![Value::Int(0)]]);
    }
    assert_eq!(count(&mut other, "SELECT COUNT(*) FROM R").await, 6);
    let free = "DECLARE @r int; EXEC @r = sp_getapplock @Resource = 'r-series', \
        @LockMode = 'Exclusive', @LockOwner = 'Session', @LockTimeout = 0; \
        EXEC sp_releaseapplock @Resource = 'r-series', @LockOwner = 'Session'; SELECT @r AS r";
    // The second INSERT fails, then the first: error first, then the rollback; nothing of the
    // transaction stays, the SELECT after COMMIT never runs, the lock is free.
    for (a, b) in [(7, 1), (2, 8)] {
        let out = run_p(&mut s, BATCH, &ps(a, b)).await;
        assert_eq!(errors(&out), vec![2627], "{out:?}");
        assert_eq!(tx_events(&out), vec!["begin", "rollback"], "{out:?}");
        let err_at = out.iter().position(|o| matches!(o, Output::Error(_)));
        let rb_at = out
            .iter()
            .position(|o| matches!(o, Output::Tx(TxEvent::Rollback(_))));
        assert!(err_at < rb_at, "error before rollback: {out:?}");
        assert!(!out.iter().any(|o| matches!(o, Output::Rows { .. })));
        assert_eq!(s.trancount(), 0);
        assert_eq!(count(&mut other, "SELECT COUNT(*) FROM R").await, 6);
        let out = ok(&mut other, free).await;
        assert_eq!(rowset(&out, 0).1, vec![vec![Value::Int(0)]], "{out:?}");
    }
    // The session is healthy afterwards.
    ok_p(&mut s, BATCH, &ps(9, 10)).await;
    assert_eq!(count(&mut other, "SELECT COUNT(*) FROM R").await, 8);
}

/// `SET @v = SCOPE_IDENTITY()` right behind a pipelined INSERT is not waited for: statements
/// that use `@v` are pipelined too (with the identity read server-side). Every value must be
/// what statement-by-statement execution gives (XACT_ABORT OFF, nothing pipelined): the header
/// id in the lines and UPDATEs, a variable of a table that gets another row before its use,
/// a bigint variable, @@ROWCOUNT after the SET, and a failure in the pipeline.
#[tokio::test]
async fn scope_identity_variable_behind_pipelined_insert() {
    let db = db().await;
    let mut s = db.session().await;
    let mut other = db.session().await;
    ok(
        &mut s,
        "CREATE TABLE H (id int IDENTITY(1,1) NOT NULL PRIMARY KEY, code int NOT NULL UNIQUE, \
         recid int NOT NULL)",
    )
    .await;
    ok(
        &mut s,
        "CREATE TABLE L (id int IDENTITY(100,1) NOT NULL PRIMARY KEY, h int NOT NULL, \
         recid int NOT NULL)",
    )
    .await;
    let batch = |xact: &str| {
        format!(
            "DECLARE @h int; DECLARE @h2 bigint; DECLARE @f int; \
             SET XACT_ABORT {xact}; BEGIN TRAN; \
             INSERT INTO H (code, recid) VALUES (@P1, 0); \
             SET @h = CAST(SCOPE_IDENTITY() AS int); \
             UPDATE H SET recid = id WHERE id = @h; \
             INSERT INTO L (h, recid) VALUES (@h, 0); \
             UPDATE L SET recid = id WHERE id = SCOPE_IDENTITY(); \
             INSERT INTO L (h, recid) VALUES (@h, 0); \
             SET @f = SCOPE_IDENTITY(); \
             INSERT INTO L (h, recid) VALUES (@h, @f); \
             INSERT INTO H (code, recid) VALUES (@P2, @h), (@P3, @h); \
             SET @h2 = SCOPE_IDENTITY(); \
             SELECT @@ROWCOUNT AS rc; \
             UPDATE H SET recid = @h2 WHERE id = @h2; \
             COMMIT TRAN; \
             SELECT @h AS h, @h2 AS h2, @f AS f"
        )
    };
    let ps = |k: i64| {
        vec![
            p("@P1", SqlType::Int, Value::Int(k)),
            p("@P2", SqlType::Int, Value::Int(k + 1)),
            p("@P3", SqlType::Int, Value::Int(k + 2)),
        ]
    };
    let int = |v: &Value| match v {
        Value::Int(n) => *n,
        v => panic!("{v:?}"),
    };
    // Statement by statement first, then pipelined (the first pipelined run prepares).
    for (xact, k) in [("OFF", 10), ("ON", 20), ("ON", 30), ("ON", 40)] {
        let out = ok_p(&mut s, &batch(xact), &ps(k)).await;
        assert_eq!(
            rowset(&out, 0).1,
            vec![vec![Value::Int(1)]],
            "@@ROWCOUNT after SET"
        );
        let vals = &rowset(&out, 1).1[0];
        let (h, h2, f) = (int(&vals[0]), int(&vals[1]), int(&vals[2]));
        let id_of = |code: i64| format!("SELECT id FROM H WHERE code = {code}");
        assert_eq!(count(&mut other, &id_of(k)).await, h, "{xact}");
        assert_eq!(count(&mut other, &id_of(k + 2)).await, h2, "{xact}");
        let q = |sql: String| sql;
        assert_eq!(
            count(
                &mut other,
                &q(format!(
                    "SELECT COUNT(*) FROM H WHERE code IN ({k}, {}) AND recid = id",
                    k + 2
                ))
            )
            .await,
            2,
            "{xact}"
        );
        assert_eq!(
            count(
                &mut other,
                &q(format!("SELECT recid FROM H WHERE code = {}", k + 1))
            )
            .await,
            h,
            "{xact}"
        );
        // Lines: all point at the header; the first carries its own id, the third the
        // second's id (@f, read while L got another row before @f was used).
        assert_eq!(
            count(
                &mut other,
                &q(format!("SELECT COUNT(*) FROM L WHERE h = {h}"))
            )
            .await,
            3
        );
        assert_eq!(
            count(
                &mut other,
                &q(format!(
                    "SELECT MIN(id) FROM L WHERE h = {h} AND recid = id"
                ))
            )
            .await,
            f - 1,
            "{xact}"
        );
        assert_eq!(
            count(
                &mut other,
                &q(format!(
                    "SELECT MAX(id) FROM L WHERE h = {h} AND recid = {f}"
                ))
            )
            .await,
            f + 1,
            "{xact}"
        );
    }
    // A failing INSERT behind the deferred SETs (codes 40 and 41 exist): its error, the
    // rollback, nothing written, the session healthy.
    let before = count(&mut other, "SELECT COUNT(*) FROM L").await;
    let out = run_p(&mut s, &batch("ON"), &ps(39)).await;
    assert_eq!(errors(&out), vec![2627], "{out:?}");
    assert_eq!(tx_events(&out), vec!["begin", "rollback"]);
    assert_eq!(s.trancount(), 0);
    assert_eq!(count(&mut other, "SELECT COUNT(*) FROM L").await, before);
    ok_p(&mut s, &batch("ON"), &ps(50)).await;
    assert_eq!(
        count(&mut other, "SELECT COUNT(*) FROM L").await,
        before + 3
    );
}

/// `SET @v = (SELECT …)` of an integer variable under XACT_ABORT ON in a transaction (once the
/// transaction is open in PostgreSQL: the UPDATE in front of it) is sent with the pipeline (Mikro numbering: the MAX right behind the lock): the statements after it
/// must see the value as it was when the SET ran — not the subquery evaluated again after the
/// rows they insert — and the variable must hold it afterwards; NULL stays NULL, a bigint
/// expression into an int variable is not deferred (its conversion error stays on the SET), and
/// an error in the SET ends the batch with nothing after it applied.
#[tokio::test]
async fn pipelined_scalar_set_keeps_its_value() {
    let db = db().await;
    let mut s = db.session().await;
    let mut other = db.session().await;
    ok(
        &mut s,
        "CREATE TABLE H (id int IDENTITY(1,1) NOT NULL PRIMARY KEY, seri nvarchar(5) NOT NULL, \
         sira int NULL)",
    )
    .await;
    ok(&mut s, "CREATE TABLE L (hid int NOT NULL, sira int NULL)").await;
    const BATCH: &str = "SET XACT_ABORT ON; BEGIN TRAN; \
        DECLARE @sira int, @h int; \
        UPDATE H SET sira = sira WHERE id < 0; \
        SET @sira = (SELECT ISNULL(MAX(sira), 0) + 1 FROM H WHERE seri = @P1); \
        INSERT INTO H (seri, sira) VALUES (@P1, @sira); \
        SET @h = SCOPE_IDENTITY(); \
        INSERT INTO L (hid, sira) VALUES (@h, @sira); \
        INSERT INTO L (hid, sira) VALUES (@h, @sira); \
        COMMIT TRAN; SET XACT_ABORT OFF; \
        SELECT @sira AS sira, @@ROWCOUNT AS rc";
    let seri = |v: &str| {
        [p(
            "@P1",
            SqlType::NVarChar(Some(5)),
            Value::String(v.into()),
        )]
    };
    // The first batch prepares the statements, the later ones pipeline them.
    for expected in 1..=4i64 {
        let out = ok_p(&mut s, BATCH, &seri("ST")).await;
        let (_, rows) = rowset(&out, 0);
        assert_eq!(
            rows,
            vec![vec![Value::Int(expected), Value::Int(0)]],
            "{out:?}"
        );
        assert_eq!(tx_events(&out), vec!["begin", "commit"]);
    }
    // Every line carries its header's number; four headers, four numbers.
    for (sql, n) in [
        (
            "SELECT COUNT(*) FROM L JOIN H ON H.id = L.hid WHERE L.sira = H.sira",
            8,
        ),
        ("SELECT COUNT(DISTINCT sira) FROM H", 4),
    ] {
        assert_eq!(count(&mut other, sql).await, n, "{sql}");
    }
    // NULL (no row of that series, no ISNULL): the rows get NULL and so does the variable.
    const NULL_BATCH: &str =
        "SET XACT_ABORT ON; BEGIN TRAN; DECLARE @sira int; UPDATE H SET sira = sira WHERE id < 0; \
        SET @sira = (SELECT MAX(sira) FROM H WHERE seri = @P1); \
        INSERT INTO L (hid, sira) VALUES (-1, @sira); \
        COMMIT TRAN; SET XACT_ABORT OFF; SELECT CASE WHEN @sira IS NULL THEN 1 ELSE 0 END AS n";
    for _ in 0..2 {
        let out = ok_p(&mut s, NULL_BATCH, &seri("XX")).await;
        assert_eq!(scalar(&out).1, Value::Int(1), "{out:?}");
    }
    assert_eq!(
        count(
            &mut other,
            "SELECT COUNT(*) FROM L WHERE hid = -1 AND sira IS NULL"
        )
        .await,
        2
    );
    // A subquery with more than one row fails on the SET (512): the transaction is rolled
    // back, the INSERT behind it never applies, the batch stops.
    const BAD: &str =
        "SET XACT_ABORT ON; BEGIN TRAN; DECLARE @sira int; UPDATE H SET sira = sira WHERE id < 0; \
        SET @sira = (SELECT sira FROM H); \
        INSERT INTO L (hid, sira) VALUES (-2, 0); \
        COMMIT TRAN; SET XACT_ABORT OFF; SELECT 1 AS after";
    for _ in 0..2 {
        let out = run_p(&mut s, BAD, &[]).await;
        assert_eq!(errors(&out), vec![512], "{out:?}");
        assert_eq!(tx_events(&out), vec!["begin", "rollback"]);
        assert!(
            !out.iter().any(|o| matches!(o, Output::Rows { .. })),
            "{out:?}"
        );
        assert_eq!(s.trancount(), 0);
    }
    assert_eq!(
        count(&mut other, "SELECT COUNT(*) FROM L WHERE hid = -2").await,
        0
    );
    // bigint into int: out of range is error 8115 on the SET itself, as if it ran alone.
    const WIDE: &str =
        "SET XACT_ABORT ON; BEGIN TRAN; DECLARE @sira int; UPDATE H SET sira = sira WHERE id < 0; \
        SET @sira = (SELECT CAST(MAX(sira) AS bigint) + 3000000000 FROM H); \
        INSERT INTO L (hid, sira) VALUES (-3, @sira); \
        COMMIT TRAN; SET XACT_ABORT OFF";
    for _ in 0..2 {
        let out = run_p(&mut s, WIDE, &[]).await;
        assert_eq!(errors(&out), vec![8115], "{out:?}");
        assert_eq!(s.trancount(), 0);
    }
    assert_eq!(
        count(&mut other, "SELECT COUNT(*) FROM L WHERE hid = -3").await,
        0
    );
}

/// Mikro's `INSERT …; SET @v = SCOPE_IDENTITY(); UPDATE … SET recid = id, kur = 1 WHERE id = @v`
/// under XACT_ABORT ON in a transaction goes to PostgreSQL as one INSERT that writes the row as
/// the UPDATE leaves it. Everything the client sees and every row stored must be as when the
/// statements run one by one (XACT_ABORT OFF), and the UPDATE must really not run: the fused
/// rows leave no dead row version behind (adjacent tuple offsets in the heap page).
#[tokio::test]
async fn insert_and_recid_update_fused() {
    let db = db().await;
    let mut s = db.session().await;
    let (pg, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    ok(
        &mut s,
        "CREATE TABLE F (id int IDENTITY(1,1) NOT NULL PRIMARY KEY, code int NOT NULL UNIQUE, \
         recid int NOT NULL, kur float NOT NULL, flag tinyint NOT NULL, note nvarchar(5) NOT NULL)",
    )
    .await;
    let batch = |xact: &str| {
        format!(
            "DECLARE @h int; SET XACT_ABORT {xact}; BEGIN TRAN; \
             UPDATE F SET recid = recid WHERE id < 0; \
             INSERT INTO F (code, recid, kur, flag, note) VALUES (@P1, 0, @P2, 3, N''); \
             SET @h = CAST(SCOPE_IDENTITY() AS int); \
             UPDATE F SET recid = id, kur = 1 WHERE id = @h; \
             INSERT INTO F (code, recid, kur, flag, note) VALUES (@P3, 0, 0, @P4, @P5); \
             UPDATE dbo.F SET recid = id WHERE id = SCOPE_IDENTITY(); \
             SELECT @@ROWCOUNT AS rc, CAST(SCOPE_IDENTITY() AS int) AS si, @h AS h; \
             COMMIT TRAN"
        )
    };
    let ps = |k: i64, flag: i64| {
        vec![
            p("@P1", SqlType::Int, Value::Int(k)),
            p("@P2", SqlType::Float, Value::Float(0.0)),
            p("@P3", SqlType::Int, Value::Int(k + 1)),
            p("@P4", SqlType::Int, Value::Int(flag)),
            p("@P5", SqlType::NVarChar(Some(4000)), txt("n")),
        ]
    };
    let offsets = |rows: Vec<tokio_postgres::Row>| -> Vec<(i32, i32, i32, f64, i16)> {
        rows.iter()
            .map(|r| {
                let ctid: String = r.get(0);
                let off = ctid
                    .trim_matches(|c| c == '(' || c == ')')
                    .split(',')
                    .nth(1)
                    .and_then(|o| o.parse().ok())
                    .unwrap_or(-1);
                (r.get(1), off, r.get(2), r.get(3), r.get(4))
            })
            .collect()
    };
    // One by one, then pipelined (the first ON run prepares the fused statement).
    let mut first = None;
    for (xact, k) in [("OFF", 10), ("ON", 20), ("ON", 30), ("ON", 40)] {
        let out = ok_p(&mut s, &batch(xact), &ps(k, 5)).await;
        let shown = (counts(&out), rowset(&out, 0).1[0][0].clone());
        match &first {
            None => first = Some(shown),
            Some(f) => assert_eq!(&shown, f, "{xact} {k}: {out:?}"),
        }
        let (_, rows) = rowset(&out, 0);
        let id = |code: i64| format!("SELECT id FROM F WHERE code = {code}");
        let out = ok(&mut s, &id(k)).await;
        assert_eq!(rows[0][2], scalar(&out).1, "@h");
        let out = ok(&mut s, &id(k + 1)).await;
        assert_eq!(rows[0][1], scalar(&out).1, "SCOPE_IDENTITY()");
    }
    let rows = pg
        .query(
            "SELECT ctid::text, code, recid - id, kur, flag FROM dbo.f ORDER BY id",
            &[],
        )
        .await
        .expect("read");
    let rows = offsets(rows);
    for (code, _, recid_minus_id, kur, flag) in &rows {
        assert_eq!(*recid_minus_id, 0, "recid of {code}");
        let (want_kur, want_flag) = if code % 10 == 0 { (1.0, 3) } else { (0.0, 5) };
        assert_eq!((*kur, *flag), (want_kur, want_flag), "{code}");
    }
    // One by one: an INSERT and an UPDATE per row (two tuple versions); fused: one.
    assert_eq!(rows[1].1 - rows[0].1, 2, "{rows:?}");
    assert_eq!(rows[7].1 - rows[6].1, 1, "{rows:?}");
    // A failing fused INSERT (code 41 exists; flag out of range): its error, the rollback, nothing
    // written; the session is healthy afterwards.
    for (k, flag) in [(40, 5), (50, 300)] {
        let out = run_p(&mut s, &batch("ON"), &ps(k, flag)).await;
        let want = if flag > 255 { 220 } else { 2627 };
        assert_eq!(errors(&out), vec![want], "{out:?}");
        assert_eq!(tx_events(&out), vec!["begin", "rollback"]);
        assert_eq!(s.trancount(), 0);
    }
    assert_eq!(count(&mut s, "SELECT COUNT(*) FROM F").await, 8);
    ok_p(&mut s, &batch("ON"), &ps(60, 5)).await;
    assert_eq!(
        count(&mut s, "SELECT COUNT(*) FROM F WHERE recid = id").await,
        10
    );
}
