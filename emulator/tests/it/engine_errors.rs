//! Error numbers and strict rejection, driving `Session` directly.

use crate::engine_support;

use engine_support::*;
use mikro_emulator::value::{SqlType, Value};

const SETUP: &str = "CREATE TABLE P (id int NOT NULL, CONSTRAINT PK_P PRIMARY KEY (id));
CREATE TABLE T (
    id int IDENTITY(1,1) NOT NULL CONSTRAINT PK_T PRIMARY KEY,
    code nvarchar(5) NOT NULL,
    p_id int NULL CONSTRAINT FK_T_P REFERENCES P (id),
    small tinyint NULL,
    CONSTRAINT UQ_T_code UNIQUE (code)
);
CREATE UNIQUE INDEX IX_T_small ON T (small);
INSERT INTO P (id) VALUES (1);";

#[tokio::test]
async fn sql_server_error_numbers() {
    let db = db().await;
    let mut s = db.session().await;
    ok(&mut s, SETUP).await;
    ok(
        &mut s,
        "INSERT INTO T (code, p_id, small) VALUES (N'a', 1, 1)",
    )
    .await;

    let out = run(&mut s, "INSERT INTO P (id) VALUES (1)").await;
    assert_eq!(errors(&out), vec![2627]);
    assert_eq!(
        error_messages(&out)[0],
        "Violation of PRIMARY KEY constraint 'PK_P'. Cannot insert duplicate key in object 'dbo.P'. The duplicate key value is (1)."
    );
    let out = run(&mut s, "INSERT INTO T (code) VALUES (N'A')").await;
    assert_eq!(errors(&out), vec![2627], "{out:?}");
    assert!(error_messages(&out)[0].starts_with("Violation of UNIQUE KEY constraint 'UQ_T_code'"));
    let out = run(&mut s, "INSERT INTO T (code, small) VALUES (N'b', 1)").await;
    assert_eq!(errors(&out), vec![2601]);
    assert!(
        error_messages(&out)[0].contains("with unique index 'IX_T_small'"),
        "{out:?}"
    );
    let out = run(&mut s, "INSERT INTO T (code, p_id) VALUES (N'c', 99)").await;
    assert_eq!(errors(&out), vec![547]);
    let out = run(&mut s, "INSERT INTO T (code) VALUES (NULL)").await;
    assert_eq!(errors(&out), vec![515]);
    assert_eq!(
        error_messages(&out)[0],
        "Cannot insert the value NULL into column 'code', table 'erp.dbo.T'; column does not allow nulls. INSERT fails."
    );
    let out = run_p(
        &mut s,
        "INSERT INTO T (code) VALUES (@P1)",
        &[p("@P1", SqlType::NVarChar(Some(4000)), Value::Null)],
    )
    .await;
    assert_eq!(errors(&out), vec![515]);
    let out = run(&mut s, "INSERT INTO T (code) VALUES (N'toolong')").await;
    assert_eq!(errors(&out), vec![8152]);
    let out = run(&mut s, "INSERT INTO T (code, small) VALUES (N'd', 300)").await;
    assert_eq!(errors(&out), vec![220]);
    assert_eq!(
        error_messages(&out)[0],
        "Arithmetic overflow error for data type tinyint."
    );
    // tinyint range: from a parameter, below 0, and from an expression in an UPDATE.
    let out = run_p(
        &mut s,
        "INSERT INTO T (code, small) VALUES (N'd', @P1)",
        &[p("@P1", SqlType::Int, Value::Int(256))],
    )
    .await;
    assert_eq!(errors(&out), vec![220]);
    let out = run(&mut s, "INSERT INTO T (code, small) VALUES (N'd', -1)").await;
    assert_eq!(errors(&out), vec![220]);
    let out = run(&mut s, "UPDATE T SET small = small + 255 WHERE code = N'a'").await;
    assert_eq!(errors(&out), vec![220]);
    // The row is unchanged, reads back as tinyint, and 255 is accepted.
    ok(&mut s, "UPDATE T SET small = 255 WHERE code = N'a'").await;
    let out = run(&mut s, "SELECT small FROM T WHERE code = N'a'").await;
    assert_eq!(scalar(&out), (SqlType::TinyInt, Value::Int(255)));
    ok(&mut s, "UPDATE T SET small = 1 WHERE code = N'a'").await;
    // From INSERT … SELECT and from a string, as from VALUES.
    let out = run(&mut s, "INSERT INTO T (code, small) SELECT N'd', 256").await;
    assert_eq!(errors(&out), vec![220]);
    let out = run(
        &mut s,
        "INSERT INTO T (code, small) SELECT N'd', small - 2 FROM T WHERE code = N'a'",
    )
    .await;
    assert_eq!(errors(&out), vec![220]);
    ok(
        &mut s,
        "INSERT INTO T (code, small) SELECT N'd', small + 6 FROM T WHERE code = N'a'",
    )
    .await;
    ok(&mut s, "INSERT INTO T (code, small) VALUES (N'e', '9')").await;
    let out = run(&mut s, "INSERT INTO T (code, small) VALUES (N'f', '300')").await;
    assert_eq!(errors(&out), vec![220]);
    let out = run(
        &mut s,
        "SELECT small FROM T WHERE code IN (N'd', N'e') ORDER BY code",
    )
    .await;
    assert_eq!(
        rowset(&out, 0).1,
        vec![vec![Value::Int(7)], vec![Value::Int(9)]]
    );
    ok(&mut s, "DELETE FROM T WHERE code IN (N'd', N'e')").await;
    let out = run(&mut s, "SELECT * FROM Missing").await;
    assert_eq!(errors(&out), vec![208]);
    assert_eq!(error_messages(&out)[0], "Invalid object name 'Missing'.");
    let out = run(&mut s, "SELECT nope FROM T").await;
    assert_eq!(errors(&out), vec![207]);
    assert_eq!(error_messages(&out)[0], "Invalid column name 'nope'.");
    let out = run(&mut s, "INSERT INTO T (id, code) VALUES (10, N'e')").await;
    assert_eq!(errors(&out), vec![544]);
    let out = run(&mut s, "SELECT 1/0").await;
    assert_eq!(errors(&out), vec![8134]);
    // A constraint error ends the statement, not the batch.
    let out = run(&mut s, "INSERT INTO P (id) VALUES (1); SELECT 5 AS five").await;
    assert_eq!(errors(&out), vec![2627]);
    assert_eq!(scalar(&out).1, Value::Int(5));
    // A missing object aborts the batch.
    let out = run(&mut s, "SELECT * FROM Missing; SELECT 5 AS five").await;
    assert_eq!(errors(&out), vec![208]);
    assert!(out
        .iter()
        .all(|o| !matches!(o, mikro_emulator::value::Output::Rows { .. })));
    // IDENTITY_INSERT allows explicit values and reseeds.
    ok(
        &mut s,
        "SET IDENTITY_INSERT T ON; INSERT INTO T (id, code) VALUES (100, N'x'); SET IDENTITY_INSERT T OFF",
    )
    .await;
    let out = ok(
        &mut s,
        "INSERT INTO T (code) VALUES (N'y'); SELECT SCOPE_IDENTITY()",
    )
    .await;
    assert_eq!(scalar(&out).1, Value::Decimal(101.into()));
}

#[tokio::test]
async fn strict_rejection_of_non_tsql() {
    let db = db().await;
    let mut s = db.session().await;
    ok(&mut s, SETUP).await;
    for sql in [
        "SELECT id FROM T LIMIT 5",
        "SELECT id::text FROM T",
        "SELECT $1",
        "INSERT INTO P (id) VALUES (2) RETURNING id",
        "INSERT INTO P (id) VALUES (2) ON CONFLICT DO NOTHING",
        "SELECT now()",
        "SELECT code FROM T WHERE code ILIKE 'a%'",
        "SELECT code || 'x' FROM T",
        "SELECT \"abc\"",
        "SELECT id FROM T WHERE code = \"abc\"",
        "SELECT TRUE",
        "CREATE TABLE IF NOT EXISTS Z (a int)",
        "SELECT array_agg(code) FROM T",
        "SELECT E'x'",
        "IF 1 = 1 BEGIN BEGIN TRY SELECT 1 END TRY BEGIN CATCH SELECT 2 END CATCH END",
        "WHILE 1 = 1 SELECT 1",
        "SELECT id FROM T FOR UPDATE",
        "SELECT 1 NULLS FIRST",
        "SELECT NEXT VALUE FOR dbo.seq",
        "WAITFOR DELAY '00:00:01'",
    ] {
        let out = run(&mut s, sql).await;
        let e = errors(&out);
        assert!(
            e == vec![102] || e == vec![207],
            "{sql} should be rejected with 102 (or 207 for a double-quoted name): {out:?}"
        );
    }
    // The message names the construct.
    let out = run(&mut s, "SELECT id FROM T LIMIT 5").await;
    assert!(error_messages(&out)[0].contains("LIMIT"), "{out:?}");
    let out = run(&mut s, "SELECT now()").await;
    assert!(error_messages(&out)[0].contains("now"), "{out:?}");
    // Nothing was written by the rejected INSERTs.
    let out = ok(&mut s, "SELECT COUNT(*) FROM P").await;
    assert_eq!(scalar(&out).1, Value::Int(1));
}

#[tokio::test]
async fn at_at_error() {
    let db = db().await;
    let mut s = db.session().await;
    ok(&mut s, SETUP).await;
    let out = run(
        &mut s,
        "BEGIN TRAN; INSERT INTO P (id) VALUES (1); IF @@ERROR <> 0 ROLLBACK; SELECT @@TRANCOUNT AS tc, @@ERROR AS e",
    )
    .await;
    assert_eq!(errors(&out), vec![2627]);
    let (_, r) = rowset(&out, 0);
    assert_eq!(r[0], vec![Value::Int(0), Value::Int(0)]);
}

#[tokio::test]
async fn throw_and_raiserror() {
    let db = db().await;
    let mut s = db.session().await;
    let out = run(&mut s, "THROW 50001, N'Belge bulunamadı', 3; SELECT 1").await;
    assert_eq!(errors(&out), vec![50001]);
    assert_eq!(error_messages(&out), vec!["Belge bulunamadı".to_string()]);
    assert!(
        out.iter()
            .all(|o| !matches!(o, mikro_emulator::value::Output::Rows { .. })),
        "THROW ends the batch"
    );
    let out = run(
        &mut s,
        "RAISERROR(N'kayıt %s bozuk (%d)', 16, 1, N'X', 42); SELECT 1 AS devam",
    )
    .await;
    assert_eq!(errors(&out), vec![50000]);
    assert_eq!(error_messages(&out), vec!["kayıt X bozuk (42)".to_string()]);
    assert_eq!(
        scalar(&out).1,
        Value::Int(1),
        "RAISERROR does not end the batch"
    );
    let out = ok(&mut s, "RAISERROR('bilgi', 10, 1) WITH NOWAIT").await;
    assert!(out.iter().any(
        |o| matches!(o, mikro_emulator::value::Output::Info { message, .. } if message == "bilgi")
    ));
    let out = run(&mut s, "THROW").await;
    assert_eq!(errors(&out), vec![10704]);
}

#[tokio::test]
async fn try_catch() {
    let db = db().await;
    let mut s = db.session().await;
    ok(&mut s, SETUP).await;
    // The error goes to CATCH, not to the client.
    let out = ok(
        &mut s,
        "BEGIN TRY
             INSERT INTO P (id) VALUES (1);
             SELECT 'not reached' AS x;
         END TRY
         BEGIN CATCH
             SELECT ERROR_NUMBER() AS n, ERROR_MESSAGE() AS m, ERROR_SEVERITY() AS sev, XACT_STATE() AS xs;
         END CATCH;
         SELECT 'after' AS y",
    )
    .await;
    let (c, r) = rowset(&out, 0);
    assert_eq!(c[0].name, "n");
    assert_eq!(r[0][0], Value::Int(2627));
    assert!(
        matches!(&r[0][1], Value::String(m) if m.starts_with("Violation of PRIMARY KEY constraint 'PK_P'"))
    );
    assert_eq!(r[0][2], Value::Int(14));
    assert_eq!(r[0][3], Value::Int(0));
    assert_eq!(rowset(&out, 1).1, vec![vec![txt("after")]]);
    // The usual transactional pattern: rollback in CATCH and rethrow.
    let out = run(
        &mut s,
        "SET XACT_ABORT ON;
         BEGIN TRY
             BEGIN TRAN;
             INSERT INTO P (id) VALUES (2);
             INSERT INTO P (id) VALUES (1);
             COMMIT;
         END TRY
         BEGIN CATCH
             IF @@TRANCOUNT > 0 ROLLBACK;
             THROW;
         END CATCH",
    )
    .await;
    assert_eq!(errors(&out), vec![2627]);
    assert_eq!(s.trancount(), 0);
    let out = ok(&mut s, "SET XACT_ABORT OFF; SELECT COUNT(*) FROM P").await;
    assert_eq!(scalar(&out).1, Value::Int(1));
    // No error: CATCH is skipped; nested TRY blocks.
    let out = ok(
        &mut s,
        "BEGIN TRY
             BEGIN TRY SELECT 1/0 AS z END TRY BEGIN CATCH SELECT ERROR_NUMBER() AS inner_n END CATCH;
             SELECT 2 AS ok2;
         END TRY
         BEGIN CATCH SELECT 'outer' AS o END CATCH",
    )
    .await;
    assert_eq!(rowset(&out, 0).1, vec![vec![Value::Int(8134)]]);
    assert_eq!(rowset(&out, 1).1, vec![vec![Value::Int(2)]]);
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, mikro_emulator::value::Output::Rows { .. }))
            .count(),
        2
    );
    // Compile errors (invalid object) are not caught at the same level.
    let out = run(
        &mut s,
        "BEGIN TRY SELECT * FROM Missing END TRY BEGIN CATCH SELECT 1 AS c END CATCH",
    )
    .await;
    assert_eq!(errors(&out), vec![208]);
}
