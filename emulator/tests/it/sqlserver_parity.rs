//! Where the emulator used to answer differently from SQL Server (issue 17): each case here is
//! what SQL Server 2022 with `Turkish_CI_AS` answers, checked through tiberius over TDS (so the
//! TDS encoding's errors, such as 220, are included). Against a real server
//! (`MIKRO_TEST_MSSQL`) the same assertions hold.

use mikro_emulator::harness::{Harness, HarnessOptions};

async fn harness() -> Harness {
    Harness::start(HarnessOptions {
        web_schema: false,
        web_seed: false,
        ..HarnessOptions::default()
    })
    .await
    .expect("harness")
}

async fn one_string(c: &mut mikro_emulator::harness::ErpClient, sql: &str) -> Option<String> {
    let row = c
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_row()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("one row");
    row.get::<&str, _>(0).map(str::to_string)
}

async fn one_int(c: &mut mikro_emulator::harness::ErpClient, sql: &str) -> Option<i32> {
    let row = c
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_row()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("one row");
    row.get::<i32, _>(0)
}

/// Runs a batch that must succeed.
async fn exec(c: &mut mikro_emulator::harness::ErpClient, sql: &str) {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_results()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// `sql` run with one string parameter (RPC sp_executesql, as drivers send it); its int answer.
async fn param_int(c: &mut mikro_emulator::harness::ErpClient, sql: &str, p: &str) -> i32 {
    c.query(sql, &[&p])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_row()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("one row")
        .get(0)
        .expect("an int")
}

async fn server_error(c: &mut mikro_emulator::harness::ErpClient, sql: &str) -> (u32, String) {
    let r = match c.simple_query(sql).await {
        Ok(s) => s.into_results().await.map(|_| ()),
        Err(e) => Err(e),
    };
    match r {
        Err(tiberius::error::Error::Server(t)) => (t.code(), t.message().to_string()),
        other => panic!("{sql}: expected a server error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_and_charindex_follow_turkish_ci_as() {
    let h = harness().await;
    let mut c = h.erp_client().await.unwrap();
    assert_eq!(
        one_string(&mut c, "SELECT REPLACE(N'İİ', N'i', N'x')")
            .await
            .as_deref(),
        Some("xx")
    );
    assert_eq!(
        one_string(&mut c, "SELECT REPLACE(N'IşIk ışık', N'ı', N'-')")
            .await
            .as_deref(),
        Some("-ş-k -ş-k"),
        "dotless ı matches I, not i"
    );
    assert_eq!(
        one_string(&mut c, "SELECT REPLACE(N'şişe', N'S', N'x')")
            .await
            .as_deref(),
        Some("şişe"),
        "accent-sensitive: s is not ş"
    );
    assert_eq!(
        one_string(
            &mut c,
            "SELECT REPLACE(N'Kırşehir KIRŞEHİR', N'ŞEHİR', N'')"
        )
        .await
        .as_deref(),
        Some("Kır KIR"),
        "text outside the matches keeps its case"
    );
    assert_eq!(
        one_int(&mut c, "SELECT CHARINDEX(N'ŞEHİR', N'kırşehir')").await,
        Some(4)
    );
    assert_eq!(
        one_int(&mut c, "SELECT CHARINDEX(N'İ', N'abi')").await,
        Some(3)
    );
    assert_eq!(
        one_int(&mut c, "SELECT CHARINDEX(N'I', N'abi')").await,
        Some(0)
    );
    assert_eq!(
        one_int(&mut c, "SELECT CHARINDEX(N'', N'abc')").await,
        Some(0)
    );
    // LIKE already followed the collation; pinned alongside.
    assert_eq!(
        one_int(
            &mut c,
            "SELECT CASE WHEN N'İSTANBUL' LIKE N'%stan%' THEN 1 ELSE 0 END"
        )
        .await,
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comparisons_ignore_trailing_spaces() {
    let h = harness().await;
    let mut c = h.erp_client().await.unwrap();
    assert_eq!(
        one_int(
            &mut c,
            "SELECT CASE WHEN N'şt' = N'ŞT   ' THEN 1 ELSE 0 END"
        )
        .await,
        Some(1)
    );
    assert_eq!(
        one_int(
            &mut c,
            "SELECT CASE WHEN N'abc ' <> N'abc' THEN 1 ELSE 0 END"
        )
        .await,
        Some(0)
    );
    // A parameter with trailing spaces finds the stored code (an index lookup on the column).
    let row = c
        .query(
            "SELECT cari_kod FROM CARI_HESAPLAR WHERE cari_kod = @P1",
            &[&"120.01.001   "],
        )
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .expect("found with trailing spaces");
    assert_eq!(row.get::<&str, _>(0), Some("120.01.001"));
    let n: i32 = c
        .query(
            "SELECT COUNT(*) FROM CARI_HESAPLAR WHERE cari_kod IN (@P1, @P2)",
            &[&"120.01.001 ", &"120.01.002  "],
        )
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .unwrap()
        .get(0)
        .unwrap();
    assert_eq!(n, 2);
}

/// Values *stored* with trailing spaces: SQL Server pads the shorter side in every comparison,
/// so `=`, `<>`, `IN`, `BETWEEN`, joins, GROUP BY, DISTINCT, UNION and unique keys ignore
/// trailing spaces; LEN ignores them, DATALENGTH counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_trailing_spaces_compare_as_sql_server_does() {
    let h = harness().await;
    let mut c = h.erp_client().await.unwrap();
    exec(
        &mut c,
        "CREATE TABLE ts_kod (id int IDENTITY(1,1) PRIMARY KEY, kod nvarchar(20) NOT NULL, ad varchar(20) NULL);
         CREATE UNIQUE INDEX ix_ts_kod ON ts_kod (kod);
         CREATE TABLE ts_hareket (id int IDENTITY(1,1) PRIMARY KEY, kod nvarchar(20) NOT NULL, tutar int NOT NULL);
         CREATE INDEX ix_ts_hareket_kod ON ts_hareket (kod);
         INSERT INTO ts_kod (kod, ad) VALUES (N'K1  ', 'bir  '), (N'K2', 'iki');
         INSERT INTO ts_hareket (kod, tutar) VALUES (N'K1', 10), (N'K1   ', 20), (N'k1 ', 5), (N'K2  ', 7);",
    )
    .await;
    for (sql, want) in [
        // The stored 'K1  ' found by an indexed lookup with and without trailing spaces.
        ("SELECT COUNT(*) FROM ts_kod WHERE kod = N'K1'", 1),
        ("SELECT COUNT(*) FROM ts_kod WHERE kod = N'K1      '", 1),
        ("SELECT COUNT(*) FROM ts_kod WHERE N'K1' = kod", 1),
        ("SELECT COUNT(*) FROM ts_kod WHERE ad = 'bir'", 1),
        ("SELECT COUNT(*) FROM ts_hareket WHERE kod <> N'K1'", 1),
        ("SELECT COUNT(*) FROM ts_hareket WHERE kod IN (N'K1', N'X')", 3),
        ("SELECT COUNT(*) FROM ts_hareket WHERE kod NOT IN (N'K1 ')", 1),
        ("SELECT COUNT(*) FROM ts_hareket WHERE kod BETWEEN N'K1' AND N'K1'", 3),
        ("SELECT COUNT(*) FROM ts_hareket WHERE kod > N'K1'", 1),
        (
            "SELECT COUNT(*) FROM ts_hareket WHERE kod IN (SELECT kod FROM ts_kod WHERE ad = 'bir')",
            3,
        ),
        (
            "SELECT SUM(CASE kod WHEN N'K1' THEN 1 ELSE 0 END) FROM ts_hareket",
            3,
        ),
        (
            "SELECT COUNT(*) FROM ts_hareket WHERE NULLIF(kod, N'K1') IS NULL",
            3,
        ),
        // A join on the stored values.
        (
            "SELECT SUM(h.tutar) FROM ts_kod k JOIN ts_hareket h ON h.kod = k.kod WHERE k.id = 1",
            35,
        ),
        (
            "SELECT COUNT(*) FROM ts_kod k WHERE EXISTS (SELECT 1 FROM ts_hareket h WHERE h.kod = k.kod)",
            2,
        ),
        // GROUP BY, DISTINCT, COUNT(DISTINCT), UNION: 'K1', 'K1   ', 'k1 ' are one value.
        (
            "SELECT COUNT(*) FROM (SELECT kod FROM ts_hareket GROUP BY kod) g",
            2,
        ),
        (
            "SELECT MAX(t) FROM (SELECT kod, SUM(tutar) AS t FROM ts_hareket GROUP BY kod) g",
            35,
        ),
        ("SELECT COUNT(DISTINCT kod) FROM ts_hareket", 2),
        (
            "SELECT COUNT(*) FROM (SELECT DISTINCT kod FROM ts_hareket) d",
            2,
        ),
        (
            "SELECT COUNT(*) FROM (SELECT kod FROM ts_kod UNION SELECT kod FROM ts_hareket) u",
            2,
        ),
        (
            "SELECT COUNT(*) FROM (SELECT kod FROM ts_hareket EXCEPT SELECT kod FROM ts_kod) e",
            0,
        ),
        ("SELECT COUNT(*) FROM (SELECT kod FROM ts_hareket UNION ALL SELECT kod FROM ts_kod) u", 6),
        // LEN ignores trailing spaces, DATALENGTH counts them (nvarchar: 2 bytes a character).
        ("SELECT LEN(kod) FROM ts_kod WHERE id = 1", 2),
        ("SELECT DATALENGTH(kod) FROM ts_kod WHERE id = 1", 8),
        ("SELECT DATALENGTH(ad) FROM ts_kod WHERE id = 1", 5),
        ("SELECT DATALENGTH(N'ab ')", 6),
        ("SELECT DATALENGTH(id) FROM ts_kod WHERE id = 1", 4),
    ] {
        assert_eq!(one_int(&mut c, sql).await, Some(want), "{sql}");
    }
    // Parameters (sp_executesql), with and without trailing spaces, against the stored value.
    for p in ["K1", "K1 ", "k1    "] {
        let n = param_int(&mut c, "SELECT COUNT(*) FROM ts_kod WHERE kod = @P1", p).await;
        assert_eq!(n, 1, "parameter {p:?}");
    }
    // GROUP BY with ORDER BY on the grouped column.
    let rows = c
        .simple_query("SELECT kod, SUM(tutar) AS t FROM ts_hareket GROUP BY kod ORDER BY kod")
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    let sums: Vec<i32> = rows.iter().map(|r| r.get::<i32, _>(1).unwrap()).collect();
    assert_eq!(sums, vec![35, 7]);

    // A grouped or DISTINCT column comes back as one of its stored values, trailing spaces
    // included (every 'Z' here was stored with two); a column neither grouped nor aggregated
    // stays error 8120.
    exec(
        &mut c,
        "CREATE TABLE ts_g (kod nvarchar(10) NOT NULL, n int NOT NULL);
         INSERT INTO ts_g (kod, n) VALUES (N'Z  ', 1), (N'z  ', 2), (N'Y', 3);",
    )
    .await;
    for (sql, want) in [
        (
            "SELECT MAX(DATALENGTH(k)) FROM (SELECT kod AS k, SUM(n) AS t FROM ts_g GROUP BY kod) g",
            6,
        ),
        (
            "SELECT MAX(DATALENGTH(k)) FROM (SELECT DISTINCT kod AS k FROM ts_g) g",
            6,
        ),
        ("SELECT COUNT(*) FROM (SELECT DISTINCT kod FROM ts_g) d", 2),
        (
            "SELECT MAX(DATALENGTH(k)) FROM (SELECT kod AS k FROM ts_g UNION SELECT kod FROM ts_g WHERE n = 1) u",
            6,
        ),
        (
            "SELECT COUNT(*) FROM (SELECT kod AS k, 0 AS z FROM ts_g UNION SELECT N'y   ', 0 UNION SELECT N'X', 0) u",
            3,
        ),
        ("SELECT COUNT(*) FROM (SELECT DISTINCT * FROM ts_g WHERE n < 3) d", 2),
        (
            "SELECT COUNT(*) FROM (SELECT DISTINCT kod, 1 AS one FROM ts_g) d",
            2,
        ),
    ] {
        assert_eq!(one_int(&mut c, sql).await, Some(want), "{sql}");
    }
    assert_eq!(
        one_string(
            &mut c,
            "SELECT TOP 1 k FROM (SELECT kod AS k FROM ts_g UNION SELECT N'A') u ORDER BY k"
        )
        .await
        .as_deref(),
        Some("A")
    );
    let rows = c
        .simple_query("SELECT kod AS k FROM ts_g UNION SELECT N'A  ' ORDER BY k DESC")
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    let ks: Vec<String> = rows
        .iter()
        .map(|r| r.get::<&str, _>(0).unwrap().trim_end().to_uppercase())
        .collect();
    assert_eq!(ks, ["Z", "Y", "A"]);
    for sql in [
        "SELECT kod, n FROM ts_g GROUP BY kod",
        "SELECT DISTINCT kod, COUNT(*) FROM ts_g",
    ] {
        let (n, msg) = server_error(&mut c, sql).await;
        assert_eq!(n, 8120, "{sql}: {msg}");
    }

    // Unique keys: 'K2   ' duplicates the stored 'K2' (unique index: 2601) ...
    let (n, msg) = server_error(&mut c, "INSERT INTO ts_kod (kod) VALUES (N'K2   ')").await;
    assert_eq!(n, 2601, "{msg}");
    assert!(msg.contains("ix_ts_kod"), "{msg}");
    // The one documented difference: the message shows the key without its trailing spaces
    // (PostgreSQL reports the index's rtrim key; SQL Server the value inserted).
    let shown = if h.is_real_sql_server() {
        "(K2   )"
    } else {
        "(K2)"
    };
    assert!(
        msg.contains(&format!("The duplicate key value is {shown}.")),
        "{msg}"
    );
    // ... and 'A' vs 'A  ' under a UNIQUE constraint and a PRIMARY KEY (2627, named as declared).
    exec(
        &mut c,
        "CREATE TABLE ts_uq (kod varchar(10) NOT NULL CONSTRAINT uq_ts_uq UNIQUE);
         CREATE TABLE ts_pk (kod nvarchar(10) NOT NULL CONSTRAINT pk_ts_pk PRIMARY KEY, n int NULL);
         INSERT INTO ts_uq (kod) VALUES ('A'); INSERT INTO ts_pk (kod) VALUES (N'A');",
    )
    .await;
    let (n, msg) = server_error(&mut c, "INSERT INTO ts_uq (kod) VALUES ('A  ')").await;
    assert_eq!(n, 2627, "{msg}");
    assert!(msg.contains("UNIQUE KEY constraint 'uq_ts_uq'"), "{msg}");
    let (n, msg) = server_error(&mut c, "INSERT INTO ts_pk (kod) VALUES (N'a  ')").await;
    assert_eq!(n, 2627, "{msg}");
    assert!(msg.contains("PRIMARY KEY constraint 'pk_ts_pk'"), "{msg}");
    // The extra index that enforces this is not a second entry in sys.indexes.
    assert_eq!(
        one_int(
            &mut c,
            "SELECT COUNT(*) FROM sys.indexes WHERE name IN (N'uq_ts_uq', N'pk_ts_pk')"
        )
        .await,
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charindex_with_a_start_position() {
    let h = harness().await;
    let mut c = h.erp_client().await.unwrap();
    for (sql, want) in [
        // k ı r ş e h i r: Turkish dotless ı is not i; R matches r case-insensitively.
        ("SELECT CHARINDEX(N'i', N'kırşehir')", 7),
        ("SELECT CHARINDEX(N'i', N'kırşehir', 7)", 7),
        ("SELECT CHARINDEX(N'i', N'kırşehir', 8)", 0),
        ("SELECT CHARINDEX(N'i', N'kırşehir', -3)", 7),
        ("SELECT CHARINDEX(N'R', N'kırşehir', 4)", 8),
        ("SELECT CHARINDEX(N'R', N'kırşehir', 100)", 0),
    ] {
        assert_eq!(one_int(&mut c, sql).await, Some(want), "{sql}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_versions_guids_and_overflow_errors() {
    let h = harness().await;
    let mut c = h.erp_client().await.unwrap();
    assert_eq!(
        one_string(&mut c, "SELECT DB_NAME()").await.as_deref(),
        Some(h.database())
    );
    let (n, msg) = server_error(
        &mut c,
        "CREATE TABLE par_t (id int NOT NULL, ad nvarchar(10) NOT NULL); INSERT INTO par_t (id, ad) VALUES (1, NULL)",
    )
    .await;
    assert_eq!(n, 515);
    assert!(
        msg.contains(&format!("table '{}.dbo.par_t'", h.database())),
        "{msg}"
    );

    let g = one_string(&mut c, "SELECT CAST(NEWID() AS nvarchar(36))")
        .await
        .unwrap();
    assert_eq!(g.len(), 36);
    assert_eq!(g, g.to_uppercase(), "NEWID() as text is upper case: {g}");

    let v = one_string(&mut c, "SELECT @@VERSION").await.unwrap();
    assert!(
        v.contains("SQL Server 2022") && v.contains("16.0.1000"),
        "{v}"
    );

    let (n, msg) = server_error(&mut c, "SELECT CAST(300 AS tinyint)").await;
    assert_eq!(
        (n, msg.as_str()),
        (
            220,
            "Arithmetic overflow error for data type tinyint, value = 300."
        )
    );
    let (n, _) = server_error(&mut c, "SELECT CAST(40000 AS smallint)").await;
    assert_eq!(n, 220);
    let (n, _) = server_error(
        &mut c,
        "DECLARE @b bigint = 3000000000; SELECT CAST(@b AS int)",
    )
    .await;
    assert_eq!(n, 8115);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_agg_is_t_sql() {
    let h = harness().await;
    let mut c = h.erp_client().await.unwrap();
    let s = one_string(
        &mut c,
        "SELECT STRING_AGG(cari_kod, N',') WITHIN GROUP (ORDER BY cari_kod DESC) FROM CARI_HESAPLAR WHERE cari_kod IN (N'120.01.001', N'120.01.002', N'120.01.003')",
    )
    .await;
    assert_eq!(s.as_deref(), Some("120.01.003,120.01.002,120.01.001"));
    let (n, msg) = server_error(&mut c, "SELECT array_agg(cari_kod) FROM CARI_HESAPLAR").await;
    assert_eq!(n, 102);
    assert!(msg.contains("PostgreSQL function, not T-SQL"), "{msg}");
}

/// T-SQL's LIKE character classes would match literally in PostgreSQL: refused instead, for a
/// literal pattern at compile time and for a parameter at run time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn like_character_classes_are_refused_not_misread() {
    let h = harness().await;
    let mut c = h.erp_client().await.unwrap();
    let (n, msg) = server_error(
        &mut c,
        "SELECT COUNT(*) FROM CARI_HESAPLAR WHERE cari_kod LIKE N'120.01.00[123]'",
    )
    .await;
    assert_eq!(n, 102);
    assert!(msg.contains("not supported by the emulator"), "{msg}");
    // The remedy the message names: IN (or OR of LIKEs).
    assert_eq!(
        one_int(
            &mut c,
            "SELECT COUNT(*) FROM CARI_HESAPLAR WHERE cari_kod IN (N'120.01.001', N'120.01.002', N'120.01.003')"
        )
        .await,
        Some(3)
    );
    let err = match c
        .query(
            "SELECT COUNT(*) FROM CARI_HESAPLAR WHERE cari_kod LIKE @P1",
            &[&"120.01.00[123]"],
        )
        .await
    {
        Ok(_) => panic!("LIKE with a [ ] parameter pattern was accepted"),
        Err(e) => e,
    };
    match err {
        tiberius::error::Error::Server(t) => {
            assert_eq!(t.code(), 102);
            assert!(
                t.message().contains("not supported by the emulator"),
                "{}",
                t.message()
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        one_int(
            &mut c,
            "SELECT COUNT(*) FROM CARI_HESAPLAR WHERE cari_unvan1 LIKE N'%şti.'"
        )
        .await,
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_delete_output_deleted_and_inserted() {
    let h = harness().await;
    let mut c = h.erp_client().await.unwrap();
    exec(
        &mut c,
        "CREATE TABLE par_o (id int NOT NULL PRIMARY KEY, kod nvarchar(10) NOT NULL, n int NOT NULL); \
         INSERT INTO par_o (id, kod, n) VALUES (1, N'şt', 10), (2, N'İST', 20), (3, N'x', 30)",
    )
    .await;
    let rows = c
        .query(
            "UPDATE par_o SET n = n + @P1, kod = UPPER(kod) OUTPUT DELETED.n AS old_n, INSERTED.n AS new_n, DELETED.kod, INSERTED.kod WHERE id <= 2",
            &[&5i32],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    let mut got: Vec<(i32, i32, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.get::<i32, _>(0).unwrap(),
                r.get::<i32, _>(1).unwrap(),
                r.get::<&str, _>(2).unwrap().to_string(),
                r.get::<&str, _>(3).unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (10, 15, "şt".into(), "ŞT".into()),
            (20, 25, "İST".into(), "İST".into())
        ]
    );
    let row = c
        .query(
            "DELETE FROM par_o OUTPUT DELETED.id, DELETED.n WHERE kod = @P1",
            &[&"X"],
        )
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .expect("deleted row");
    assert_eq!(
        (row.get::<i32, _>(0), row.get::<i32, _>(1)),
        (Some(3), Some(30))
    );
    let (n, _) = server_error(&mut c, "DELETE FROM par_o OUTPUT INSERTED.id WHERE id = 1").await;
    assert_ne!(n, 0, "DELETE has no INSERTED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_sp_executesql_in_batch_text() {
    let h = harness().await;
    let mut c = h.erp_client().await.unwrap();
    assert_eq!(
        one_int(
            &mut c,
            "EXEC sp_executesql N'SELECT @a + 1 AS x', N'@a int', @a = 41"
        )
        .await,
        Some(42)
    );
    assert_eq!(
        one_int(
            &mut c,
            "EXEC sp_executesql N'SELECT @a * @b', N'@a int, @b int', 6, 7"
        )
        .await,
        Some(42)
    );
    // Turkish text through a declared nvarchar parameter, a variable as the value, and the
    // statement's own scope for SCOPE_IDENTITY().
    let rows = c
        .simple_query(
            "CREATE TABLE par_x (id int IDENTITY(1,1) NOT NULL PRIMARY KEY, ad nvarchar(20) NOT NULL); \
             DECLARE @ad nvarchar(20) = N'şt İST'; \
             EXEC sp_executesql N'INSERT INTO par_x (ad) VALUES (@p); SELECT CAST(SCOPE_IDENTITY() AS int) AS id', N'@p nvarchar(20)', @p = @ad; \
             SELECT ad FROM par_x WHERE ad = N'ŞT İst'",
        )
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    assert_eq!(rows[0][0].get::<i32, _>(0), Some(1));
    assert_eq!(rows[1][0].get::<&str, _>(0), Some("şt İST"));
    // The dynamic statement does not see the caller's variables (error 137), and that error
    // ends only the dynamic batch: the caller's next statement runs.
    let (n, msg) = server_error(
        &mut c,
        "DECLARE @v int = 5; EXEC sp_executesql N'SELECT @v'; INSERT INTO par_x (ad) VALUES (N'after')",
    )
    .await;
    assert_eq!(n, 137, "{msg}");
    assert_eq!(
        one_int(&mut c, "SELECT COUNT(*) FROM par_x WHERE ad = N'AFTER'").await,
        Some(1)
    );
    let (n, msg) = server_error(&mut c, "EXEC sp_executesql N'SELECT @a', N'@a int'").await;
    assert_eq!(n, 8178, "{msg}");
}

/// LIKE and trailing spaces: a Unicode comparison (either side nvarchar/nchar, as every `N'…'`
/// literal and driver string parameter is) matches the value's trailing spaces; between two
/// non-Unicode operands the value's trailing spaces may go unmatched. Trailing spaces in the
/// pattern count on both. (Microsoft's LIKE documentation; SQL Server 2022 answers these.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn like_and_trailing_spaces_follow_the_operand_types() {
    let h = harness().await;
    let mut c = h.erp_client().await.unwrap();
    exec(
        &mut c,
        "CREATE TABLE ts_like (v varchar(10) NULL, n nvarchar(10) NULL);
         INSERT INTO ts_like (v, n) VALUES ('space ', N'nspace '), (NULL, NULL);",
    )
    .await;
    for (sql, want) in [
        // varchar column, non-Unicode pattern: the value's one trailing space may go unmatched.
        ("SELECT COUNT(*) FROM ts_like WHERE v LIKE 'space'", 1),
        ("SELECT COUNT(*) FROM ts_like WHERE v LIKE 'space '", 1),
        ("SELECT COUNT(*) FROM ts_like WHERE v LIKE 'space  '", 0),
        ("SELECT COUNT(*) FROM ts_like WHERE v LIKE 'SPA%E'", 1),
        ("SELECT COUNT(*) FROM ts_like WHERE v NOT LIKE 'space'", 0),
        // A Unicode side makes it a Unicode comparison: the trailing space must be matched.
        ("SELECT COUNT(*) FROM ts_like WHERE v LIKE N'space'", 0),
        ("SELECT COUNT(*) FROM ts_like WHERE n LIKE 'nspace'", 0),
        ("SELECT COUNT(*) FROM ts_like WHERE n LIKE N'nspace'", 0),
        ("SELECT COUNT(*) FROM ts_like WHERE n LIKE N'nspace '", 1),
        ("SELECT COUNT(*) FROM ts_like WHERE n LIKE N'nspace  '", 0),
        ("SELECT COUNT(*) FROM ts_like WHERE n LIKE N'nspace%'", 1),
        ("SELECT COUNT(*) FROM ts_like WHERE n NOT LIKE N'nspace'", 1),
        (
            "SELECT COUNT(*) FROM ts_like WHERE RTRIM(n) LIKE N'nspace'",
            1,
        ),
        // Literals.
        ("SELECT CASE WHEN 'a  ' LIKE 'a' THEN 1 ELSE 0 END", 1),
        ("SELECT CASE WHEN 'a ' LIKE 'a_' THEN 1 ELSE 0 END", 1),
        ("SELECT CASE WHEN N'a  ' LIKE N'a' THEN 1 ELSE 0 END", 0),
        ("SELECT CASE WHEN 'a' LIKE 'a ' THEN 1 ELSE 0 END", 0),
        // T-SQL has no default escape character (PostgreSQL's is the backslash).
        ("SELECT CASE WHEN N'a\\b' LIKE N'a\\b' THEN 1 ELSE 0 END", 1),
        ("SELECT CASE WHEN N'a\\%' LIKE N'a\\%' THEN 1 ELSE 0 END", 1),
        (
            "SELECT CASE WHEN N'a%b' LIKE N'a!%b' ESCAPE '!' THEN 1 ELSE 0 END",
            1,
        ),
        (
            "SELECT CASE WHEN N'axb' LIKE N'a!%b' ESCAPE '!' THEN 1 ELSE 0 END",
            0,
        ),
    ] {
        assert_eq!(one_int(&mut c, sql).await, Some(want), "{sql}");
    }
    // A driver's string parameter is nvarchar: a Unicode comparison.
    let n = param_int(
        &mut c,
        "SELECT COUNT(*) FROM ts_like WHERE v LIKE @P1",
        "space",
    )
    .await;
    assert_eq!(n, 0);
    let n = param_int(
        &mut c,
        "SELECT COUNT(*) FROM ts_like WHERE v LIKE @P1",
        "spa%",
    )
    .await;
    assert_eq!(n, 1);
}

/// Set operators without ALL, GROUP BY and DISTINCT compare character values without trailing
/// spaces but return (and compute on) the stored values, as SQL Server does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_operators_and_grouped_expressions_use_stored_values() {
    let h = harness().await;
    let mut c = h.erp_client().await.unwrap();
    exec(
        &mut c,
        "CREATE TABLE ts_s (kod nvarchar(10) NULL, n int NOT NULL);
         CREATE TABLE ts_s2 (kod nvarchar(10) NULL);
         INSERT INTO ts_s (kod, n) VALUES (N'A  ', 1), (N'B', 2), (N'b ', 3), (NULL, 4);
         INSERT INTO ts_s2 (kod) VALUES (N'B'), (NULL);",
    )
    .await;
    for (sql, want) in [
        // EXCEPT / INTERSECT: 'B' and 'b ' are one value; NULLs are equal; the stored value.
        (
            "SELECT COUNT(*) FROM (SELECT kod FROM ts_s EXCEPT SELECT kod FROM ts_s2) e",
            1,
        ),
        (
            "SELECT DATALENGTH(k) FROM (SELECT kod AS k FROM ts_s EXCEPT SELECT kod FROM ts_s2) e",
            6,
        ),
        (
            "SELECT COUNT(*) FROM (SELECT kod FROM ts_s INTERSECT SELECT kod FROM ts_s2) i",
            2,
        ),
        (
            "SELECT DATALENGTH(k) FROM (SELECT kod AS k FROM ts_s INTERSECT SELECT N'a') i",
            6,
        ),
        (
            "SELECT COUNT(*) FROM (SELECT kod, n FROM ts_s EXCEPT SELECT kod, 2 FROM ts_s2) e",
            3,
        ),
        (
            "SELECT COUNT(*) FROM (SELECT kod FROM ts_s2 EXCEPT SELECT kod FROM ts_s) e",
            0,
        ),
        // An expression over a grouped column sees the stored value ...
        (
            "SELECT DATALENGTH(k) FROM (SELECT kod + N'-' AS k FROM ts_s WHERE n = 1 GROUP BY kod) g",
            8,
        ),
        (
            "SELECT COUNT(*) FROM (SELECT kod FROM ts_s GROUP BY kod HAVING kod + N'-' = N'A  -') g",
            1,
        ),
        // ... and a key that is an expression is computed on stored values: 'B-' and 'b -'
        // differ, so there are four groups (NULL is one).
        (
            "SELECT COUNT(*) FROM (SELECT kod + N'-' AS k FROM ts_s GROUP BY kod + N'-') g",
            4,
        ),
        (
            "SELECT COUNT(*) FROM (SELECT DISTINCT kod + N'-' AS k FROM ts_s) d",
            4,
        ),
        ("SELECT COUNT(DISTINCT kod + N'-') FROM ts_s", 3),
        ("SELECT COUNT(DISTINCT kod) FROM ts_s", 2),
        (
            "SELECT MAX(DATALENGTH(l)) FROM (SELECT DISTINCT LEFT(kod, 2) AS l FROM ts_s) d",
            4,
        ),
        // A correlated subquery reads the outer query's grouped column.
        (
            "SELECT SUM(c) FROM (SELECT kod, (SELECT COUNT(*) FROM ts_s2 x WHERE x.kod = g.kod) AS c FROM ts_s g GROUP BY kod) s",
            1,
        ),
        // SELECT DISTINCT with an aggregate over groups keeps DISTINCT.
        (
            "SELECT COUNT(*) FROM (SELECT DISTINCT COUNT(*) AS c FROM ts_s GROUP BY n) d",
            1,
        ),
    ] {
        assert_eq!(one_int(&mut c, sql).await, Some(want), "{sql}");
    }
    // T-SQL has no EXCEPT ALL / INTERSECT ALL.
    for sql in [
        "SELECT kod FROM ts_s EXCEPT ALL SELECT kod FROM ts_s2",
        "SELECT kod FROM ts_s INTERSECT ALL SELECT kod FROM ts_s2",
    ] {
        let (n, msg) = server_error(&mut c, sql).await;
        assert_eq!(n, 102, "{sql}: {msg}");
    }
    assert_eq!(
        one_string(
            &mut c,
            "SELECT kod + N'-' FROM ts_s WHERE n = 1 GROUP BY kod"
        )
        .await
        .as_deref(),
        Some("A  -")
    );
    let rows = c
        .simple_query("SELECT DISTINCT kod FROM ts_s WHERE kod IS NOT NULL ORDER BY kod DESC")
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    let ks: Vec<String> = rows
        .iter()
        .map(|r| r.get::<&str, _>(0).unwrap().trim_end().to_uppercase())
        .collect();
    assert_eq!(ks, ["B", "A"]);
    let rows = c
        .simple_query(
            "SELECT DISTINCT LEFT(kod, 1) AS l FROM ts_s WHERE n < 4 ORDER BY LEFT(kod, 1)",
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
}

/// String functions as SQL Server runs them under Turkish_CI_AS: Turkish casing, trailing
/// spaces kept by LEFT/RIGHT/SUBSTRING/UPPER, a negative length refused (536/537) rather than
/// counted from the end, MIN/MAX under the collation, and the Turkish alphabet's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_functions_and_turkish_order() {
    let h = harness().await;
    let mut c = h.erp_client().await.unwrap();
    for (sql, want) in [
        ("SELECT UPPER(N'istanbul ılık')", "İSTANBUL ILIK"),
        ("SELECT LOWER(N'IŞIK İZMİR')", "ışık izmir"),
        ("SELECT UPPER(N'şt  ') + N'|'", "ŞT  |"),
        ("SELECT LEFT(N'ab  ', 3) + N'|'", "ab |"),
        ("SELECT RIGHT(N'ab  ', 3) + N'|'", "b  |"),
        ("SELECT SUBSTRING(N'abc', 0, 2)", "a"),
        ("SELECT SUBSTRING(N'abc', -1, 3)", "a"),
        ("SELECT SUBSTRING(N'kırşehir', 4, 5)", "şehir"),
        ("SELECT LTRIM(N'  a  ') + N'|'", "a  |"),
    ] {
        assert_eq!(
            one_string(&mut c, sql).await.as_deref(),
            Some(want),
            "{sql}"
        );
    }
    for (sql, number) in [
        ("SELECT LEFT(N'abc', -1)", 536),
        ("SELECT RIGHT(N'abc', -1)", 536),
        ("SELECT SUBSTRING(N'abc', 1, -1)", 537),
        ("DECLARE @n int = -2; SELECT LEFT(N'abc', @n)", 536),
    ] {
        let (n, msg) = server_error(&mut c, sql).await;
        assert_eq!(n, number, "{sql}: {msg}");
    }
    exec(
        &mut c,
        "CREATE TABLE ts_tr (ad nvarchar(20) NOT NULL);
         INSERT INTO ts_tr (ad) VALUES (N'dal'), (N'çam'), (N'cam'), (N'iğne'), (N'ılık'),
           (N'öz'), (N'ok'), (N'pul'), (N'şu'), (N'su'), (N'tuz'), (N'ün'), (N'un'), (N'var'),
           (N'gül'), (N'hal'), (N'Irmak'), (N'İzmir');",
    )
    .await;
    let rows = c
        .simple_query("SELECT ad FROM ts_tr ORDER BY ad")
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    let order: Vec<&str> = rows.iter().map(|r| r.get::<&str, _>(0).unwrap()).collect();
    // Turkish alphabet: c ç d … g ğ h ı i … o ö p … s ş t u ü v; I is the capital of ı.
    assert_eq!(
        order,
        [
            "cam", "çam", "dal", "gül", "hal", "ılık", "Irmak", "iğne", "İzmir", "ok", "öz", "pul",
            "su", "şu", "tuz", "un", "ün", "var"
        ]
    );
    for (sql, want) in [
        ("SELECT MIN(ad) FROM ts_tr", "cam"),
        ("SELECT MAX(ad) FROM ts_tr", "var"),
        ("SELECT MAX(ad) FROM ts_tr WHERE ad < N'd'", "çam"),
        ("SELECT MIN(ad) FROM ts_tr WHERE ad > N'hal'", "ılık"),
    ] {
        assert_eq!(
            one_string(&mut c, sql).await.as_deref(),
            Some(want),
            "{sql}"
        );
    }
}

/// A FOREIGN KEY compares keys as SQL Server compares strings: a child `'A  '` (or `'a'`)
/// belongs to the parent `'A'`. Actions, 547 in both directions and the rule that the
/// referenced columns be a key (1776) stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_ignore_trailing_spaces() {
    let h = harness().await;
    let mut c = h.erp_client().await.unwrap();
    exec(
        &mut c,
        "CREATE TABLE fk_p (kod nvarchar(10) NOT NULL PRIMARY KEY, ad nvarchar(10) NULL);
         CREATE TABLE fk_c (id int IDENTITY(1,1) PRIMARY KEY, kod nvarchar(10) NOT NULL CONSTRAINT fk_c_p REFERENCES fk_p (kod), n int NULL);
         CREATE TABLE fk_c2 (id int NOT NULL, kod nvarchar(10) NULL, CONSTRAINT fk_c2_p FOREIGN KEY (kod) REFERENCES fk_p (kod) ON DELETE CASCADE);
         INSERT INTO fk_p (kod) VALUES (N'A'), (N'B  ');
         INSERT INTO fk_c (kod) VALUES (N'A  '), (N'a'), (N'B');
         INSERT INTO fk_c2 (id, kod) VALUES (1, N'b '), (2, NULL);",
    )
    .await;
    // The stored values are kept; no extra column is visible.
    assert_eq!(
        one_int(&mut c, "SELECT MAX(DATALENGTH(kod)) FROM fk_c").await,
        Some(6)
    );
    assert_eq!(
        one_int(
            &mut c,
            "SELECT COUNT(*) FROM sys.columns WHERE object_id = OBJECT_ID(N'fk_c')"
        )
        .await,
        Some(3)
    );
    let rows = c
        .simple_query("SELECT * FROM fk_c2")
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(rows[0].columns().len(), 2);

    let (n, msg) = server_error(&mut c, "INSERT INTO fk_c (kod) VALUES (N'C')").await;
    assert_eq!(n, 547, "{msg}");
    assert!(msg.contains("FOREIGN KEY constraint \"fk_c_p\""), "{msg}");
    let (n, msg) = server_error(&mut c, "UPDATE fk_c SET kod = N'Z' WHERE id = 1").await;
    assert_eq!(n, 547, "{msg}");
    let (n, msg) = server_error(&mut c, "DELETE FROM fk_p WHERE kod = N'A'").await;
    assert_eq!(n, 547, "{msg}");
    assert!(msg.contains("REFERENCE constraint \"fk_c_p\""), "{msg}");
    // ON DELETE CASCADE reaches the child stored as 'b '.
    exec(
        &mut c,
        "DELETE FROM fk_c WHERE kod = N'B'; DELETE FROM fk_p WHERE kod = N'b';",
    )
    .await;
    assert_eq!(one_int(&mut c, "SELECT COUNT(*) FROM fk_c2").await, Some(1));
    // A parent key change that leaves a child behind is refused.
    let (n, msg) = server_error(&mut c, "UPDATE fk_p SET kod = N'X' WHERE kod = N'A'").await;
    assert_eq!(n, 547, "{msg}");
    // ALTER TABLE … ADD with REFERENCES behaves the same.
    exec(
        &mut c,
        "ALTER TABLE fk_c ADD k2 nvarchar(10) NULL CONSTRAINT fk_c_k2 REFERENCES fk_p (kod);
         UPDATE fk_c SET k2 = N'a   ' WHERE id = 1;",
    )
    .await;
    let (n, msg) = server_error(&mut c, "UPDATE fk_c SET k2 = N'Q' WHERE id = 1").await;
    assert_eq!(n, 547, "{msg}");
    // Referenced columns that are not a key: 1776, as SQL Server.
    let (n, msg) = server_error(
        &mut c,
        "CREATE TABLE fk_bad (kod nvarchar(10) NULL REFERENCES fk_p (ad))",
    )
    .await;
    assert_eq!(n, 1776, "{msg}");
}

/// `char(n)`/`nchar(n)` values are padded to n as SQL Server stores them, and the padding is
/// part of the value wherever it is used as text (`+`, LIKE, UPPER, CAST), not only when read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn char_columns_keep_their_padding() {
    let h = harness().await;
    let mut c = h.erp_client().await.unwrap();
    exec(
        &mut c,
        "CREATE TABLE ts_ch (id int NOT NULL PRIMARY KEY, c char(5) NOT NULL, n nchar(5) NOT NULL);
         CREATE UNIQUE INDEX ix_ts_ch_c ON ts_ch (c);
         INSERT INTO ts_ch (id, c, n) VALUES (1, 'ab', N'şt'), (2, 'cd ', N'x');",
    )
    .await;
    for (sql, want) in [
        ("SELECT c + '|' FROM ts_ch WHERE id = 1", "ab   |"),
        ("SELECT n + N'|' FROM ts_ch WHERE id = 1", "şt   |"),
        ("SELECT UPPER(n) + N'|' FROM ts_ch WHERE id = 1", "ŞT   |"),
        ("SELECT c FROM ts_ch WHERE id = 1", "ab   "),
        ("SELECT CAST('ab' AS char(4)) + '|'", "ab  |"),
        ("SELECT CAST(N'abcdef' AS nchar(3)) + N'|'", "abc|"),
        ("SELECT MIN(c) + '|' FROM ts_ch", "ab   |"),
        (
            "SELECT c + '|' FROM ts_ch WHERE id = 1 GROUP BY c",
            "ab   |",
        ),
    ] {
        assert_eq!(
            one_string(&mut c, sql).await.as_deref(),
            Some(want),
            "{sql}"
        );
    }
    for (sql, want) in [
        ("SELECT COUNT(*) FROM ts_ch WHERE c = 'ab'", 1),
        ("SELECT COUNT(*) FROM ts_ch WHERE c = 'AB   '", 1),
        ("SELECT COUNT(*) FROM ts_ch WHERE n = N'ŞT'", 1),
        ("SELECT COUNT(*) FROM ts_ch WHERE c IN ('ab', 'cd')", 2),
        ("SELECT LEN(c) FROM ts_ch WHERE id = 1", 2),
        ("SELECT DATALENGTH(n) FROM ts_ch WHERE id = 1", 10),
        // nchar: a Unicode comparison, the padding must be matched; char: it may go.
        ("SELECT COUNT(*) FROM ts_ch WHERE n LIKE N'şt'", 0),
        ("SELECT COUNT(*) FROM ts_ch WHERE n LIKE N'şt%'", 1),
        ("SELECT COUNT(*) FROM ts_ch WHERE c LIKE 'ab'", 1),
        ("SELECT COUNT(*) FROM ts_ch WHERE c LIKE N'ab'", 0),
    ] {
        assert_eq!(one_int(&mut c, sql).await, Some(want), "{sql}");
    }
    let (n, msg) = server_error(
        &mut c,
        "INSERT INTO ts_ch (id, c, n) VALUES (3, 'AB ', N'y')",
    )
    .await;
    assert_eq!(n, 2601, "{msg}");
}

/// Conversions as SQL Server does them: a string next to a number converts to the number
/// (`'5' + 1` is 6), dates become text in CONVERT's styles (CAST of a datetime: `Mar  5 2024
/// 2:07PM`), datetime shown rounded to the millisecond; unknown styles are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversions_as_sql_server_writes_them() {
    let h = harness().await;
    let mut c = h.erp_client().await.unwrap();
    for (sql, want) in [
        ("SELECT '5' + 1", 6),
        ("SELECT 1 + '5'", 6),
        ("SELECT N'10' + 5", 15),
        ("SELECT N'10' - 4", 6),
        ("DECLARE @s nvarchar(5) = N'7'; SELECT @s + 1", 8),
    ] {
        assert_eq!(one_int(&mut c, sql).await, Some(want), "{sql}");
    }
    let (n, msg) = server_error(&mut c, "SELECT 'abc' + 1").await;
    assert_eq!(n, 245, "{msg}");
    let (n, msg) = server_error(&mut c, "SELECT N'x' + GETDATE()").await;
    assert_eq!(n, 102, "{msg}");

    let d = "CAST('2024-03-05 14:07:09.007' AS datetime)";
    let d0 = "CAST('2024-03-05 00:00:00' AS datetime)";
    let d2 = "CAST('2024-03-05 14:07:09.123456' AS datetime2(7))";
    let day = "CAST('2024-03-05' AS date)";
    for (sql, want) in [
        (
            format!("SELECT CAST({d} AS varchar(30))"),
            "Mar  5 2024  2:07PM",
        ),
        (
            format!("SELECT CONVERT(varchar(30), {d0}, 100)"),
            "Mar  5 2024 12:00AM",
        ),
        (
            format!("SELECT CONVERT(varchar(30), {d}, 121)"),
            "2024-03-05 14:07:09.007",
        ),
        (
            format!("SELECT CONVERT(varchar(30), {d}, 126)"),
            "2024-03-05T14:07:09.007",
        ),
        (
            format!("SELECT CONVERT(varchar(30), {d0}, 126)"),
            "2024-03-05T00:00:00",
        ),
        (
            format!("SELECT CONVERT(varchar(30), {d}, 120)"),
            "2024-03-05 14:07:09",
        ),
        (
            format!("SELECT CONVERT(varchar(10), {d}, 104)"),
            "05.03.2024",
        ),
        (
            format!("SELECT CONVERT(varchar(11), {d}, 106)"),
            "05 Mar 2024",
        ),
        (
            format!("SELECT CONVERT(varchar(12), {d}, 107)"),
            "Mar 05, 2024",
        ),
        (format!("SELECT CONVERT(varchar(8), {d}, 112)"), "20240305"),
        (format!("SELECT CONVERT(varchar(8), {d}, 108)"), "14:07:09"),
        (
            format!("SELECT CONVERT(varchar(10), {d}, 120)"),
            "2024-03-05",
        ),
        (
            format!("SELECT CAST({d2} AS varchar(40))"),
            "2024-03-05 14:07:09.1234560",
        ),
        (
            "SELECT CAST(CAST('2024-03-05 14:07:09.5' AS datetime2(0)) AS varchar(40))".into(),
            "2024-03-05 14:07:10",
        ),
        (format!("SELECT CAST({day} AS varchar(10))"), "2024-03-05"),
        (
            format!("SELECT CONVERT(varchar(10), {day}, 104)"),
            "05.03.2024",
        ),
    ] {
        assert_eq!(
            one_string(&mut c, &sql).await.as_deref(),
            Some(want),
            "{sql}"
        );
    }
    // ROUND's third argument truncates; money as text has two decimals; float as text has six
    // significant digits (scientific notation is refused).
    for (sql, want) in [
        (
            "SELECT CAST(CAST(1 AS float) / 3 AS nvarchar(30))",
            "0.333333",
        ),
        ("SELECT CAST(CAST(5 AS float) AS nvarchar(30))", "5"),
        ("SELECT CAST(CAST(-2.5 AS float) AS nvarchar(30))", "-2.5"),
        (
            "SELECT CAST(CAST(123456.7 AS float) AS nvarchar(30))",
            "123457",
        ),
        (
            "SELECT CAST(CAST(0.0001 AS float) AS nvarchar(30))",
            "0.0001",
        ),
        ("SELECT CONCAT(N'x', CAST(1 AS float) / 8)", "x0.125"),
        ("SELECT CAST(ROUND(2.567, 2, 1) AS nvarchar(10))", "2.560"),
        ("SELECT CAST(ROUND(2.567, 2) AS nvarchar(10))", "2.570"),
        ("SELECT CAST(ROUND(-2.567, 2, 1) AS nvarchar(10))", "-2.560"),
        (
            "SELECT CAST(CAST(12.3456 AS money) AS nvarchar(20))",
            "12.35",
        ),
    ] {
        assert_eq!(
            one_string(&mut c, sql).await.as_deref(),
            Some(want),
            "{sql}"
        );
    }
    for sql in [
        "SELECT CAST(CAST(1234567 AS float) AS nvarchar(30))",
        "SELECT CAST(CAST(999999.7 AS float) AS nvarchar(30))",
        "SELECT CAST(CAST(0.00001 AS float) AS nvarchar(30))",
    ] {
        let (n, msg) = server_error(&mut c, sql).await;
        assert_eq!(n, 102, "{sql}: {msg}");
        assert!(msg.contains("not supported by the emulator"), "{msg}");
    }
    assert_eq!(
        one_string(
            &mut c,
            &format!("SELECT CONCAT(N'[', {d}, N'|', CAST(1.5 AS money), N'|', 7, N']')")
        )
        .await
        .as_deref(),
        Some("[Mar  5 2024  2:07PM|1.50|7]")
    );
    // DATEPART: whole seconds and milliseconds, day of year.
    for (sql, want) in [
        (format!("SELECT DATEPART(second, {d})"), 9),
        (format!("SELECT DATEPART(millisecond, {d})"), 7),
        (format!("SELECT DATEPART(ms, {d2})"), 123),
        (
            "SELECT DATEPART(second, CAST('2024-03-05 14:07:09.5' AS datetime2(3)))".into(),
            9,
        ),
        (format!("SELECT DATEPART(dayofyear, {d})"), 65),
        (format!("SELECT DATEPART(dy, {day})"), 65),
        (format!("SELECT DATEPART(day, {d})"), 5),
        (format!("SELECT DATEPART(minute, {d})"), 7),
    ] {
        assert_eq!(one_int(&mut c, &sql).await, Some(want), "{sql}");
    }
    for sql in [
        format!("SELECT CONVERT(varchar(30), {d}, 109)"),
        format!("SELECT CONVERT(varchar(30), {d}, 4)"),
        format!("SELECT CONVERT(varchar(30), {day}, 108)"),
    ] {
        let (n, msg) = server_error(&mut c, &sql).await;
        assert_eq!(n, 102, "{sql}: {msg}");
        assert!(msg.contains("not supported by the emulator"), "{msg}");
    }
}

/// Assignments convert to the declared type as SQL Server does: a variable holds at most its
/// declared length (`varchar` without a length is one character), `ISNULL`'s replacement takes
/// the first argument's type, and decimals round half away from zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_and_isnull_take_the_declared_type() {
    let h = harness().await;
    let mut c = h.erp_client().await.unwrap();
    for (sql, want) in [
        ("DECLARE @v nvarchar(3) = N'abcdef'; SELECT @v", "abc"),
        ("DECLARE @v varchar = 'abc'; SELECT @v", "a"),
        ("DECLARE @v nvarchar(3); SET @v = N'abcdef'; SELECT @v + N'|'", "abc|"),
        ("DECLARE @v nchar(4) = N'ab'; SELECT @v + N'|'", "ab  |"),
        (
            "DECLARE @x nvarchar(6); SELECT @x = cari_kod FROM CARI_HESAPLAR WHERE cari_kod = N'120.01.001'; SELECT @x",
            "120.01",
        ),
        ("DECLARE @v varchar(3) = NULL; SELECT ISNULL(@v, 'abcdef')", "abc"),
        ("SELECT ISNULL(CAST(NULL AS nvarchar(2)), N'xyz')", "xy"),
        ("DECLARE @d decimal(5,2) = 1.005; SELECT CAST(@d AS nvarchar(10))", "1.01"),
        ("DECLARE @d decimal(5,2) = -1.005; SELECT CAST(@d AS nvarchar(10))", "-1.01"),
        ("SELECT CAST(CAST(2.675 AS decimal(5,2)) AS nvarchar(10))", "2.68"),
    ] {
        assert_eq!(one_string(&mut c, sql).await.as_deref(), Some(want), "{sql}");
    }
    assert_eq!(
        one_int(&mut c, "DECLARE @i int = NULL; SELECT ISNULL(@i, 2.7)").await,
        Some(2)
    );
}
