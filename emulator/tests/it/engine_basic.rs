//! Engine tests driving `Session` directly against a throwaway PostgreSQL: DDL, typed results,
//! SCOPE_IDENTITY, OUTPUT, variables, IF/OBJECT_ID/sys.tables, Turkish case-insensitivity.

use crate::engine_support;

use chrono::NaiveDate;
use engine_support::*;
use mikro_emulator::value::{SqlType, Value};
use rust_decimal::Decimal;

const CREATE_T: &str = "CREATE TABLE dbo.Typed (
    [RECno] int IDENTITY(1,1) NOT NULL,
    t_tiny tinyint NOT NULL,
    t_small smallint NOT NULL,
    t_int int NOT NULL,
    t_big bigint NULL,
    t_float float NOT NULL,
    t_dec decimal(18,4) NULL,
    t_bit bit NOT NULL DEFAULT 0,
    t_dt datetime NOT NULL,
    t_dt2 datetime2(7) NULL,
    t_date date NULL,
    t_guid uniqueidentifier NULL,
    t_name nvarchar(50) COLLATE Turkish_CI_AS NOT NULL,
    t_note nvarchar(max) NULL,
    CONSTRAINT PK_Typed PRIMARY KEY CLUSTERED ([RECno])
)";

#[tokio::test]
async fn create_insert_select_typed() {
    let db = db().await;
    let mut s = db.session().await;
    ok(&mut s, CREATE_T).await;
    let out = ok(
        &mut s,
        "INSERT INTO Typed (t_tiny, t_small, t_int, t_big, t_float, t_dec, t_bit, t_dt, t_dt2, t_date, t_guid, t_name, t_note)
         VALUES (255, -5, 123456, 9000000000, 1.5, 12.3456, 1, '2024-01-02 03:04:05.678', '2024-01-02 03:04:05.1234567', '2024-01-02',
                 '6F9619FF-8B86-D011-B42D-00C04FC964FF', N'İstanbul Çağrı', N'uzun')",
    )
    .await;
    assert_eq!(counts(&out), vec![Some(1)]);
    let out = ok(&mut s, "SELECT * FROM dbo.Typed").await;
    let (cols, rows) = rowset(&out, 0);
    let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "RECno", "t_tiny", "t_small", "t_int", "t_big", "t_float", "t_dec", "t_bit", "t_dt",
            "t_dt2", "t_date", "t_guid", "t_name", "t_note"
        ]
    );
    let types: Vec<SqlType> = cols.iter().map(|c| c.ty.clone()).collect();
    assert_eq!(
        types,
        vec![
            SqlType::Int,
            SqlType::TinyInt,
            SqlType::SmallInt,
            SqlType::Int,
            SqlType::BigInt,
            SqlType::Float,
            SqlType::Decimal {
                precision: 18,
                scale: 4
            },
            SqlType::Bit,
            SqlType::DateTime,
            SqlType::DateTime2(7),
            SqlType::Date,
            SqlType::UniqueIdentifier,
            SqlType::NVarChar(Some(50)),
            SqlType::NVarChar(None),
        ]
    );
    let r = &rows[0];
    assert_eq!(r[0], Value::Int(1));
    assert_eq!(r[1], Value::Int(255));
    assert_eq!(r[2], Value::Int(-5));
    assert_eq!(r[4], Value::Int(9_000_000_000));
    assert_eq!(r[5], Value::Float(1.5));
    assert_eq!(r[6], Value::Decimal(Decimal::new(123456, 4)));
    assert_eq!(r[7], Value::Bool(true));
    // datetime rounds to 1/300 s: .678 → .677 (.6766667)
    let dt = NaiveDate::from_ymd_opt(2024, 1, 2)
        .unwrap()
        .and_hms_nano_opt(3, 4, 5, 676_666_666)
        .unwrap();
    assert_eq!(r[8], Value::DateTime(dt));
    assert_eq!(
        r[10],
        Value::Date(NaiveDate::from_ymd_opt(2024, 1, 2).unwrap())
    );
    assert_eq!(r[12], txt("İstanbul Çağrı"));
    assert!(matches!(r[11], Value::Guid(_)));
}

#[tokio::test]
async fn expression_typing() {
    let db = db().await;
    let mut s = db.session().await;
    ok(&mut s, CREATE_T).await;
    ok(
        &mut s,
        "INSERT INTO Typed (t_tiny, t_small, t_int, t_float, t_dt, t_name) VALUES (1, 2, 3, 2.5, GETDATE(), N'a'), (4, 5, 6, 0.5, GETDATE(), N'b')",
    )
    .await;
    let out = ok(
        &mut s,
        "SELECT COUNT(*) AS n, COUNT_BIG(*) AS nb, SUM(t_int) AS si, SUM(t_float) AS sf, MAX(t_small) AS mx, MIN(t_name) AS mn,
                ISNULL(MAX(t_int), 0) + 1 AS nxt, AVG(t_int) AS av, GETDATE() AS gd, SYSDATETIME() AS sd, NEWID() AS g,
                CAST(1 AS decimal(10,2)) AS c, 1 AS one, 1.50 AS lit, N'x' AS nl, 'y' AS vl, LEN(N'abc  ') AS l,
                CONVERT(varchar, CAST('2024-03-04' AS date), 112) AS d112, @@TRANCOUNT AS tc
         FROM Typed",
    )
    .await;
    let (cols, rows) = rowset(&out, 0);
    let t: Vec<(String, SqlType)> = cols
        .iter()
        .map(|c| (c.name.clone(), c.ty.clone()))
        .collect();
    let expect = vec![
        ("n", SqlType::Int),
        ("nb", SqlType::BigInt),
        ("si", SqlType::Int),
        ("sf", SqlType::Float),
        ("mx", SqlType::SmallInt),
        ("mn", SqlType::NVarChar(Some(50))),
        ("nxt", SqlType::Int),
        ("av", SqlType::Int),
        ("gd", SqlType::DateTime),
        ("sd", SqlType::DateTime2(7)),
        ("g", SqlType::UniqueIdentifier),
        (
            "c",
            SqlType::Decimal {
                precision: 10,
                scale: 2,
            },
        ),
        ("one", SqlType::Int),
        (
            "lit",
            SqlType::Decimal {
                precision: 3,
                scale: 2,
            },
        ),
        ("nl", SqlType::NVarChar(Some(1))),
        ("vl", SqlType::VarChar(Some(1))),
        ("l", SqlType::Int),
        ("d112", SqlType::VarChar(Some(30))),
        ("tc", SqlType::Int),
    ];
    let expect: Vec<(String, SqlType)> = expect
        .into_iter()
        .map(|(a, b)| (a.to_string(), b))
        .collect();
    assert_eq!(t, expect);
    let r = &rows[0];
    assert_eq!(r[0], Value::Int(2));
    assert_eq!(r[1], Value::Int(2));
    assert_eq!(r[2], Value::Int(9));
    assert_eq!(r[3], Value::Float(3.0));
    assert_eq!(r[4], Value::Int(5));
    assert_eq!(r[5], txt("a"));
    assert_eq!(r[6], Value::Int(7));
    assert_eq!(r[7], Value::Int(4));
    assert_eq!(r[11], Value::Decimal(Decimal::new(100, 2)));
    assert_eq!(r[16], Value::Int(3));
    assert_eq!(r[17], txt("20240304"));
    assert_eq!(r[18], Value::Int(0));
}

#[tokio::test]
async fn scope_identity_output_and_params() {
    let db = db().await;
    let mut s = db.session().await;
    ok(&mut s, CREATE_T).await;
    let params = vec![
        p("@P1", SqlType::Int, Value::Int(7)),
        p("@P2", SqlType::NVarChar(Some(4000)), txt("Ilık")),
        p(
            "@P3",
            SqlType::DateTime2(7),
            Value::DateTime(
                NaiveDate::from_ymd_opt(2025, 5, 6)
                    .unwrap()
                    .and_hms_opt(7, 8, 9)
                    .unwrap(),
            ),
        ),
    ];
    let sql = "INSERT INTO Typed (t_tiny, t_small, t_int, t_float, t_dt, t_name) VALUES (1, 1, @P1, 1, @P3, @P2); SELECT CAST(SCOPE_IDENTITY() AS int) AS recno";
    let out = ok_p(&mut s, sql, &params).await;
    let (c, r) = rowset(&out, 0);
    assert_eq!(c[0].name, "recno");
    assert_eq!(c[0].ty, SqlType::Int);
    assert_eq!(r[0][0], Value::Int(1));
    let out = ok_p(&mut s, sql, &params).await;
    assert_eq!(rowset(&out, 0).1[0][0], Value::Int(2));
    // A client's check with an echo number (answered by the engine): the values and types
    // as SQL Server gives them, inside and outside a transaction.
    for (sql, tc) in [
        ("SELECT @@TRANCOUNT, 17", 0),
        ("BEGIN TRAN; SELECT @@TRANCOUNT, 17; COMMIT TRAN", 1),
    ] {
        let out = ok(&mut s, sql).await;
        let (c, r) = rowset(&out, 0);
        assert_eq!(
            (c[0].ty.clone(), c[1].ty.clone()),
            (SqlType::Int, SqlType::Int)
        );
        assert_eq!(r, vec![vec![Value::Int(tc), Value::Int(17)]], "{sql}");
    }
    // A new batch / RPC call is a new scope: SCOPE_IDENTITY() is NULL there.
    let out = ok(&mut s, "SELECT SCOPE_IDENTITY() AS si, @@IDENTITY AS ii").await;
    let (c, r) = rowset(&out, 0);
    assert_eq!(
        c[0].ty,
        SqlType::Decimal {
            precision: 38,
            scale: 0
        }
    );
    assert_eq!(r[0][0], Value::Null);
    assert_eq!(r[0][1], Value::Decimal(Decimal::from(2)));
    // OUTPUT INSERTED
    let out = ok(
        &mut s,
        "INSERT INTO Typed (t_tiny, t_small, t_int, t_float, t_dt, t_name) OUTPUT INSERTED.RECno, INSERTED.t_name VALUES (1, 1, 1, 1, GETDATE(), N'x'), (1, 1, 1, 1, GETDATE(), N'y')",
    )
    .await;
    let (c, r) = rowset(&out, 0);
    assert_eq!(c[0].name, "RECno");
    assert_eq!(
        r,
        vec![vec![Value::Int(3), txt("x")], vec![Value::Int(4), txt("y")]]
    );
    // OUTPUT INSERTED on UPDATE (the new value) and OUTPUT DELETED on DELETE (the old row)
    let out = ok(
        &mut s,
        "UPDATE Typed SET t_name = N'z' OUTPUT INSERTED.RECno, INSERTED.t_name WHERE RECno = 4",
    )
    .await;
    assert_eq!(rowset(&out, 0).1, vec![vec![Value::Int(4), txt("z")]]);
    let out = ok(
        &mut s,
        "DELETE FROM Typed OUTPUT DELETED.RECno, DELETED.t_name WHERE RECno = 4",
    )
    .await;
    assert_eq!(rowset(&out, 0).1, vec![vec![Value::Int(4), txt("z")]]);
    // UPDATE with the same parameter twice, @@ROWCOUNT
    let out = ok_p(
        &mut s,
        "UPDATE Typed SET t_int = @P1 WHERE RECno = @P1; SELECT @@ROWCOUNT AS rc",
        &[p("@P1", SqlType::Int, Value::Int(2))],
    )
    .await;
    assert_eq!(counts(&out)[0], Some(1));
    assert_eq!(scalar(&out).1, Value::Int(1));
    // Paged read with TOP (@P1) and the keyset predicate
    let out = ok_p(
        &mut s,
        "SELECT TOP (@P1) RECno, t_dt FROM Typed WHERE (t_dt > @P2 OR (t_dt = @P2 AND RECno > @P3)) ORDER BY t_dt, RECno",
        &[
            p("@P1", SqlType::Int, Value::Int(1)),
            p("@P2", SqlType::DateTime2(7), Value::DateTime(NaiveDate::from_ymd_opt(2025, 5, 6).unwrap().and_hms_opt(7, 8, 9).unwrap())),
            p("@P3", SqlType::Int, Value::Int(1)),
        ],
    )
    .await;
    assert_eq!(rowset(&out, 0).1.len(), 1);
    assert_eq!(rowset(&out, 0).1[0][0], Value::Int(2));
    // SET NOCOUNT ON: no counts
    let out = ok(&mut s, "SET NOCOUNT ON; DELETE FROM Typed WHERE RECno = 4").await;
    assert_eq!(counts(&out), vec![None]);
}

#[tokio::test]
async fn variables_if_object_id_sys_tables() {
    let db = db().await;
    let mut s = db.session().await;
    let ddl = "IF OBJECT_ID(N'dbo.MIKROSYNC_LEDGER', N'U') IS NULL CREATE TABLE dbo.MIKROSYNC_LEDGER (kind nvarchar(20) NOT NULL, web_id bigint NOT NULL, CONSTRAINT PK_LEDGER PRIMARY KEY (kind, web_id))";
    ok(&mut s, ddl).await;
    ok(&mut s, ddl).await;
    // Turkish_CI_AS: 'I' folds to 'ı', so 'mikrosync_ledger' is NOT the same name.
    let out = ok(
        &mut s,
        "SELECT COUNT(*) FROM sys.tables WHERE name = 'mikrosync_ledger'",
    )
    .await;
    assert_eq!(scalar(&out).1, Value::Int(0));
    let out = run(&mut s, "SELECT * FROM mikrosync_ledger").await;
    assert_eq!(errors(&out), vec![208]);
    let out = ok(&mut s, "SELECT COUNT(*) FROM mıkrosync_ledger").await;
    assert_eq!(scalar(&out).1, Value::Int(0));
    ok(
        &mut s,
        "IF NOT EXISTS (SELECT 1 FROM sys.tables WHERE name = 'Mıkrosync_Ledger') BEGIN CREATE TABLE X (a int) END ELSE BEGIN CREATE TABLE Y (a int); CREATE UNIQUE NONCLUSTERED INDEX IX_Y ON Y (a) END",
    )
    .await;
    let out = ok(&mut s, "SELECT name FROM sys.tables ORDER BY name").await;
    assert_eq!(
        rowset(&out, 0).1,
        vec![vec![txt("MIKROSYNC_LEDGER")], vec![txt("Y")]]
    );
    let out = ok(
        &mut s,
        "DECLARE @n int = 5, @s nvarchar(10); SET @n = @n + 1; SELECT @s = N'abc'; SELECT @n AS n, @s + N'd' AS s",
    )
    .await;
    let (c, r) = rowset(&out, 0);
    assert_eq!(c[0].ty, SqlType::Int);
    assert_eq!(r[0], vec![Value::Int(6), txt("abcd")]);
    // variables are batch-scoped
    let out = run(&mut s, "SELECT @n").await;
    assert_eq!(errors(&out), vec![137]);
}

#[tokio::test]
async fn turkish_case_insensitive_equality() {
    let db = db().await;
    let mut s = db.session().await;
    ok(
        &mut s,
        "CREATE TABLE C (kod nvarchar(25) NOT NULL PRIMARY KEY, ad nvarchar(50))",
    )
    .await;
    ok(
        &mut s,
        "INSERT INTO C VALUES (N'İSTANBUL', N'ışık'), (N'IĞDIR', N'x')",
    )
    .await;
    let out = ok(&mut s, "SELECT kod FROM C WHERE kod = N'istanbul'").await;
    assert_eq!(rowset(&out, 0).1, vec![vec![txt("İSTANBUL")]]);
    let out = ok(&mut s, "SELECT kod FROM C WHERE kod = N'ığdır'").await;
    assert_eq!(rowset(&out, 0).1.len(), 1);
    // Turkish rules: I is not the capital of i.
    let out = ok(&mut s, "SELECT kod FROM C WHERE kod = N'iğdir'").await;
    assert_eq!(rowset(&out, 0).1.len(), 0);
    let out = ok(
        &mut s,
        "SELECT ad FROM C WHERE ad = N'IŞIK' AND kod LIKE N'ist%'",
    )
    .await;
    assert_eq!(rowset(&out, 0).1.len(), 1);
    // Case-insensitive identifiers
    let out = ok(&mut s, "select KOD as Kod from c where AD = N'X'").await;
    let (c, r) = rowset(&out, 0);
    assert_eq!(c[0].name, "Kod");
    assert_eq!(r.len(), 1);
    // PK is case-insensitive too: duplicate
    let out = run(&mut s, "INSERT INTO C (kod) VALUES (N'istanbul')").await;
    assert_eq!(errors(&out), vec![2627]);
}

#[tokio::test]
async fn update_and_delete_with_from_and_joins() {
    let db = db().await;
    let mut s = db.session().await;
    ok(
        &mut s,
        "CREATE TABLE H (id int NOT NULL PRIMARY KEY, kod nvarchar(10) NOT NULL, tutar float NOT NULL);
         CREATE TABLE F (kod nvarchar(10) NOT NULL PRIMARY KEY, oran float NOT NULL);
         INSERT INTO H VALUES (1, N'a', 10), (2, N'b', 20), (3, N'c', 30);
         INSERT INTO F VALUES (N'a', 2), (N'b', 3)",
    )
    .await;
    // Target named by alias, inner join.
    let out = ok(
        &mut s,
        "UPDATE h SET tutar = h.tutar * f.oran FROM H h JOIN F f ON f.kod = h.kod WHERE f.oran > 2",
    )
    .await;
    assert_eq!(counts(&out), vec![Some(1)]);
    // Target named by table, joined table second.
    let out = ok(
        &mut s,
        "UPDATE H SET tutar = H.tutar + 1 FROM F JOIN H ON F.kod = H.kod",
    )
    .await;
    assert_eq!(counts(&out), vec![Some(2)]);
    // Target not in FROM.
    ok(
        &mut s,
        "UPDATE H SET tutar = 0 FROM F WHERE F.kod = H.kod AND F.oran = 2",
    )
    .await;
    let out = ok(&mut s, "SELECT id, tutar FROM H ORDER BY id").await;
    assert_eq!(
        rowset(&out, 0).1,
        vec![
            vec![Value::Int(1), Value::Float(0.0)],
            vec![Value::Int(2), Value::Float(61.0)],
            vec![Value::Int(3), Value::Float(30.0)]
        ]
    );
    // DELETE x FROM … JOIN.
    let out = ok(
        &mut s,
        "DELETE h FROM H h JOIN F f ON f.kod = h.kod WHERE f.oran = 3",
    )
    .await;
    assert_eq!(counts(&out), vec![Some(1)]);
    let out = ok(&mut s, "DELETE H WHERE id = 3").await;
    assert_eq!(counts(&out), vec![Some(1)]);
    let out = ok(&mut s, "SELECT COUNT(*) FROM H").await;
    assert_eq!(scalar(&out).1, Value::Int(1));
    // Outer joins involving the target are refused.
    let out = run(
        &mut s,
        "UPDATE h SET tutar = 1 FROM H h LEFT JOIN F f ON f.kod = h.kod",
    )
    .await;
    assert_eq!(errors(&out), vec![102]);
}

#[tokio::test]
async fn ctes_iif_concat() {
    let db = db().await;
    let mut s = db.session().await;
    ok(
        &mut s,
        "CREATE TABLE S (id int NOT NULL, kod nvarchar(10) NOT NULL, miktar float NOT NULL);
         INSERT INTO S VALUES (1, N'a', 2), (2, N'a', 3), (3, N'b', 5)",
    )
    .await;
    let out = ok(
        &mut s,
        "WITH toplam (Kod, Toplam) AS (SELECT kod, SUM(miktar) FROM S GROUP BY kod),
              buyuk AS (SELECT Kod FROM toplam WHERE Toplam >= 5)
         SELECT t.Kod, t.Toplam, IIF(t.Toplam > 4, N'çok', N'az') AS durum, CONCAT(t.Kod, N'-', t.Toplam) AS etiket
         FROM toplam t JOIN buyuk b ON b.Kod = t.Kod ORDER BY t.Kod",
    )
    .await;
    let (c, r) = rowset(&out, 0);
    let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["Kod", "Toplam", "durum", "etiket"]);
    assert_eq!(c[1].ty, SqlType::Float);
    assert_eq!(
        r,
        vec![
            vec![txt("a"), Value::Float(5.0), txt("çok"), txt("a-5")],
            vec![txt("b"), Value::Float(5.0), txt("çok"), txt("b-5")]
        ]
    );
}

#[tokio::test]
async fn query_shapes() {
    let db = db().await;
    let mut s = db.session().await;
    ok(
        &mut s,
        "CREATE TABLE A (id int NOT NULL PRIMARY KEY, grp nvarchar(5) NOT NULL, v float NOT NULL, d datetime NOT NULL);
         CREATE TABLE B (a_id int NOT NULL, note nvarchar(20) NULL);
         INSERT INTO A VALUES (1, N'x', 1.5, '2024-01-02 10:00:00'), (2, N'x', 2.5, '2024-01-03 11:00:00'),
                              (3, N'y', 4, '2024-02-01 00:00:00'), (4, N'z', 8, '2024-03-01 00:00:00');
         INSERT INTO B VALUES (1, N'bir'), (3, NULL);
         INSERT INTO B (a_id, note) SELECT id, grp + N'!' FROM A WHERE id = 4",
    )
    .await;
    // OFFSET / FETCH
    let out = ok(
        &mut s,
        "SELECT id FROM A ORDER BY id DESC OFFSET 1 ROWS FETCH NEXT 2 ROWS ONLY",
    )
    .await;
    assert_eq!(
        rowset(&out, 0).1,
        vec![vec![Value::Int(3)], vec![Value::Int(2)]]
    );
    // GROUP BY / HAVING / aggregates
    let out = ok(&mut s, "SELECT grp, COUNT(*) AS n, SUM(v) AS s FROM A GROUP BY grp HAVING COUNT(*) > 1 ORDER BY grp").await;
    assert_eq!(
        rowset(&out, 0).1,
        vec![vec![txt("x"), Value::Int(2), Value::Float(4.0)]]
    );
    // LEFT JOIN, ISNULL, CASE, IN, BETWEEN
    let out = ok(
        &mut s,
        "SELECT a.id, ISNULL(b.note, N'-') AS note, CASE WHEN a.v > 2 THEN N'big' ELSE N'small' END AS size
         FROM A a LEFT JOIN B b ON b.a_id = a.id
         WHERE a.id IN (1, 2, 3, 4) AND a.v BETWEEN 1 AND 10 ORDER BY a.id",
    )
    .await;
    let (c, r) = rowset(&out, 0);
    assert_eq!(c[1].ty, SqlType::NVarChar(Some(20)));
    assert_eq!(
        r,
        vec![
            vec![Value::Int(1), txt("bir"), txt("small")],
            vec![Value::Int(2), txt("-"), txt("big")],
            vec![Value::Int(3), txt("-"), txt("big")],
            vec![Value::Int(4), txt("z!"), txt("big")],
        ]
    );
    // CONVERT(date, x), date literals compared with datetime, Turkish UPPER/LOWER, trims
    let out = ok(
        &mut s,
        "SELECT CONVERT(date, d) AS gun, UPPER(N'istanbul') AS u, LOWER(N'IŞIK') AS l, LTRIM(RTRIM(N'  a  ')) AS t
         FROM A WHERE d >= '2024-02-01' AND d < '20240301'",
    )
    .await;
    let (c, r) = rowset(&out, 0);
    assert_eq!(c[0].ty, SqlType::Date);
    assert_eq!(
        r,
        vec![vec![
            Value::Date(NaiveDate::from_ymd_opt(2024, 2, 1).unwrap()),
            txt("İSTANBUL"),
            txt("ışık"),
            txt("a")
        ]]
    );
    // Subqueries: EXISTS and scalar
    let out = ok(
        &mut s,
        "SELECT id, (SELECT COUNT(*) FROM B WHERE B.a_id = A.id) AS nb FROM A WHERE EXISTS (SELECT 1 FROM B WHERE B.a_id = A.id) ORDER BY id",
    )
    .await;
    assert_eq!(
        rowset(&out, 0).1,
        vec![
            vec![Value::Int(1), Value::Int(1)],
            vec![Value::Int(3), Value::Int(1)],
            vec![Value::Int(4), Value::Int(1)]
        ]
    );
    // UNION ALL, DISTINCT, TOP with ORDER BY
    let out = ok(
        &mut s,
        "SELECT TOP 2 grp FROM A GROUP BY grp ORDER BY grp DESC",
    )
    .await;
    assert_eq!(rowset(&out, 0).1, vec![vec![txt("z")], vec![txt("y")]]);
    let out = ok(&mut s, "SELECT DISTINCT grp FROM A UNION ALL SELECT N'w'").await;
    assert_eq!(rowset(&out, 0).1.len(), 4);
    // NULLs sort first ascending and last descending, as in SQL Server.
    let out = ok(&mut s, "SELECT note FROM B ORDER BY note").await;
    assert_eq!(rowset(&out, 0).1[0][0], Value::Null);
    let out = ok(&mut s, "SELECT note AS n FROM B ORDER BY n DESC").await;
    assert_eq!(rowset(&out, 0).1[2][0], Value::Null);
}

#[tokio::test]
async fn catalog_persists_across_engine_restarts() {
    let db = db().await;
    let mut s = db.session().await;
    ok(&mut s, CREATE_T).await;
    ok(&mut s, "INSERT INTO Typed (t_tiny, t_small, t_int, t_float, t_dt, t_name) VALUES (1, 2, 3, 4, GETDATE(), N'x')").await;
    s.close().await;
    // A second engine on the same database (an emulator restart) bootstraps idempotently and
    // types results from the persisted catalog.
    let engine = mikro_emulator::engine::Engine::new(&db.url)
        .await
        .expect("second engine");
    let mut s2 = engine.session().await.expect("session");
    let out = ok(&mut s2, "SELECT RECno, t_tiny, t_name FROM Typed").await;
    let (c, r) = rowset(&out, 0);
    assert_eq!(c[1].ty, SqlType::TinyInt);
    assert_eq!(c[2].ty, SqlType::NVarChar(Some(50)));
    assert_eq!(r[0][0], Value::Int(1));
    let out = ok(&mut s2, "INSERT INTO Typed (t_tiny, t_small, t_int, t_float, t_dt, t_name) VALUES (1, 2, 3, 4, GETDATE(), N'y'); SELECT SCOPE_IDENTITY() AS id").await;
    assert_eq!(scalar(&out).1, Value::Decimal(2.into()));
}

/// A 400-term expression (a client summing many parameters) is answered, not a stack overflow
/// that would take the whole server process down; on a tokio worker's 2 MiB stack as the
/// server runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_expressions_do_not_overflow_the_stack() {
    let db = db().await;
    let mut s = db.session().await;
    let task = tokio::spawn(async move {
        let terms: Vec<String> = (1..=400).map(|i| i.to_string()).collect();
        let sql = format!("SELECT {} AS total", terms.join(" + "));
        let out = ok(&mut s, &sql).await;
        let (_, rows) = rowset(&out, 0);
        rows[0][0].clone()
    });
    assert_eq!(task.await.expect("no stack overflow"), Value::Int(80_200));
}
