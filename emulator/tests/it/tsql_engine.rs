//! The T-SQL engine through the wire: tiberius 0.12 against the emulator over TCP. Result typing
//! per SQL Server type (read with the strict Rust types tiberius requires), expression typing,
//! transactions (nesting, rollback, XACT_ABORT), every mapped error number, SCOPE_IDENTITY scope
//! per RPC call, UPDLOCK+HOLDLOCK numbering from concurrent connections, sp_getapplock return
//! codes, Turkish case-insensitive equality and strict rejection of PostgreSQL-only SQL.

use chrono::{NaiveDate, NaiveDateTime};
use mikro_emulator::pgcluster::PgCluster;
use mikro_emulator::{start, EmulatorConfig, EmulatorHandle, TlsMode};
use rust_decimal::Decimal;
use tiberius::{AuthMethod, Client, Config, EncryptionLevel, Row};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};
use uuid::Uuid;

type C = Client<Compat<TcpStream>>;

const USER: &str = "sa";
const PASSWORD: &str = "Engine-Test_1";

struct Env {
    _pg: PgCluster,
    emu: EmulatorHandle,
}

impl Env {
    async fn new() -> Env {
        let pg = PgCluster::start().await.expect("start PostgreSQL");
        pg.create_database("erp").await.expect("create database");
        let emu = start(EmulatorConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            pg_url: pg.url("erp"),
            user: USER.into(),
            password: PASSWORD.into(),
            database: "MikroDB".into(),
            tls: TlsMode::Optional,
        })
        .await
        .expect("start emulator");
        Env { _pg: pg, emu }
    }

    async fn client(&self) -> C {
        let mut c = Config::new();
        c.host("127.0.0.1");
        c.port(self.emu.addr.port());
        c.authentication(AuthMethod::sql_server(USER, PASSWORD));
        c.encryption(EncryptionLevel::NotSupported);
        c.database("MikroDB");
        let tcp = TcpStream::connect(c.get_addr()).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        Client::connect(c, tcp.compat_write()).await.expect("login")
    }
}

async fn rows(c: &mut C, sql: &str) -> Vec<Row> {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_first_result()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn exec(c: &mut C, sql: &str) {
    c.simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_results()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The SQL Server error number of a failing batch (0 when it succeeded).
async fn err_code(c: &mut C, sql: &str) -> u32 {
    let r = match c.simple_query(sql).await {
        Ok(s) => s.into_results().await.map(|_| ()),
        Err(e) => Err(e),
    };
    match r {
        Ok(()) => 0,
        Err(tiberius::error::Error::Server(t)) => t.code(),
        Err(e) => panic!("{sql}: not a server error: {e}"),
    }
}

#[tokio::test]
async fn result_columns_are_typed_as_sql_server_types_them() {
    let env = Env::new().await;
    let mut c = env.client().await;
    exec(
        &mut c,
        "CREATE TABLE dbo.AllTypes (
            RECno int IDENTITY(1,1) NOT NULL PRIMARY KEY,
            c_tiny tinyint NOT NULL, c_small smallint NOT NULL, c_int int NOT NULL, c_big bigint NOT NULL,
            c_float float NOT NULL, c_real real NOT NULL, c_dec decimal(18,2) NOT NULL, c_bit bit NOT NULL,
            c_dt datetime NOT NULL, c_dt2 datetime2(7) NOT NULL, c_date date NOT NULL,
            c_guid uniqueidentifier NOT NULL, c_nv nvarchar(40) NOT NULL, c_max nvarchar(max) NULL, c_vc varchar(10) NULL)",
    )
    .await;
    let dt = NaiveDate::from_ymd_opt(2026, 11, 27)
        .unwrap()
        .and_hms_milli_opt(13, 45, 10, 500)
        .unwrap();
    let guid = Uuid::parse_str("6F9619FF-8B86-D011-B42D-00C04FC964FF").unwrap();
    let res = c
        .execute(
            "INSERT INTO AllTypes (c_tiny, c_small, c_int, c_big, c_float, c_real, c_dec, c_bit, c_dt, c_dt2, c_date, c_guid, c_nv, c_max, c_vc)
             VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8, @P9, @P10, @P11, @P12, @P13, @P14, @P15)",
            &[
                &200u8, &-300i16, &70000i32, &5_000_000_000i64, &2.25f64, &1.5f32,
                &Decimal::new(12345, 2), &true, &dt, &dt, &dt.date(), &guid,
                &"Şişli Çarşı", &"x".repeat(5000), &"ascii",
            ],
        )
        .await
        .expect("insert");
    assert_eq!(res.rows_affected(), &[1]);
    let r = rows(&mut c, "SELECT * FROM AllTypes").await;
    let r = &r[0];
    let names: Vec<&str> = r.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names[0], "RECno");
    assert_eq!(r.get::<i32, _>("RECno"), Some(1));
    assert_eq!(r.get::<u8, _>("c_tiny"), Some(200));
    assert_eq!(r.get::<i16, _>("c_small"), Some(-300));
    assert_eq!(r.get::<i32, _>("c_int"), Some(70000));
    assert_eq!(r.get::<i64, _>("c_big"), Some(5_000_000_000));
    assert_eq!(r.get::<f64, _>("c_float"), Some(2.25));
    assert_eq!(r.get::<f32, _>("c_real"), Some(1.5));
    assert_eq!(r.get::<Decimal, _>("c_dec"), Some(Decimal::new(12345, 2)));
    assert_eq!(r.get::<bool, _>("c_bit"), Some(true));
    assert_eq!(r.get::<NaiveDateTime, _>("c_dt"), Some(dt));
    assert_eq!(r.get::<NaiveDateTime, _>("c_dt2"), Some(dt));
    assert_eq!(r.get::<NaiveDate, _>("c_date"), Some(dt.date()));
    assert_eq!(r.get::<Uuid, _>("c_guid"), Some(guid));
    assert_eq!(r.get::<&str, _>("c_nv"), Some("Şişli Çarşı"));
    assert_eq!(r.get::<&str, _>("c_max").map(str::len), Some(5000));
    assert_eq!(r.get::<&str, _>("c_vc"), Some("ascii"));
    // A wrong Rust type is refused, as against SQL Server (int is not i64).
    assert!(r.try_get::<i64, _>("c_int").is_err());

    // Expression typing.
    let r = rows(
        &mut c,
        "SELECT COUNT(*) AS n, COUNT_BIG(*) AS nb, SUM(c_int) AS s, MAX(c_tiny) AS mt, ISNULL(MAX(c_small), 0) + 1 AS nx,
                SUM(c_float) AS sf
         FROM AllTypes",
    )
    .await;
    let r = &r[0];
    assert_eq!(r.get::<i32, _>("n"), Some(1));
    assert_eq!(r.get::<i64, _>("nb"), Some(1));
    assert_eq!(r.get::<i32, _>("s"), Some(70000));
    assert_eq!(r.get::<u8, _>("mt"), Some(200));
    assert_eq!(r.get::<i32, _>("nx"), Some(-299));
    assert_eq!(r.get::<f64, _>("sf"), Some(2.25));
    let r = rows(
        &mut c,
        "SELECT GETDATE() AS gd, SYSDATETIME() AS sd, NEWID() AS g, CAST(c_float AS int) AS ci, LEN(c_nv) AS l,
                CONVERT(varchar(8), c_date, 112) AS ymd, @@TRANCOUNT AS tc, N'ş' + c_nv AS cc
         FROM AllTypes",
    )
    .await;
    let r = &r[0];
    assert!(r.get::<NaiveDateTime, _>("gd").is_some());
    assert!(r.get::<NaiveDateTime, _>("sd").is_some());
    assert!(r.get::<Uuid, _>("g").is_some());
    assert_eq!(r.get::<i32, _>("ci"), Some(2));
    assert_eq!(r.get::<i32, _>("l"), Some(11));
    assert_eq!(r.get::<&str, _>("ymd"), Some("20261127"));
    assert_eq!(r.get::<i32, _>("tc"), Some(0));
    assert_eq!(r.get::<&str, _>("cc"), Some("şŞişli Çarşı"));
    // Mixing aggregates and plain columns is SQL Server's error 8120.
    let e = c.simple_query("SELECT COUNT(*), c_int FROM AllTypes").await;
    let e = match e {
        Ok(s) => s.into_results().await.map(|_| ()),
        Err(e) => Err(e),
    };
    match e {
        Err(tiberius::error::Error::Server(t)) => assert_eq!(t.code(), 8120),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn scope_identity_is_per_rpc_call_and_rowcounts() {
    let env = Env::new().await;
    let mut c = env.client().await;
    exec(&mut c, "CREATE TABLE H (RECno int IDENTITY(1,1) NOT NULL PRIMARY KEY, RECid int NOT NULL, ad nvarchar(20) NOT NULL)").await;
    for want in 1..=3 {
        let r = c
            .query(
                "INSERT INTO H (RECid, ad) VALUES (@P1, @P2); SELECT CAST(SCOPE_IDENTITY() AS int) AS recno",
                &[&0i32, &"satış"],
            )
            .await
            .unwrap()
            .into_first_result()
            .await
            .unwrap();
        let recno: i32 = r[0].get("recno").unwrap();
        assert_eq!(recno, want);
        let n = c
            .execute("UPDATE H SET RECid = @P1 WHERE RECno = @P1", &[&recno])
            .await
            .unwrap();
        assert_eq!(n.total(), 1);
    }
    // A separate call is a separate scope: SCOPE_IDENTITY() is NULL, @@IDENTITY is not.
    let r = rows(&mut c, "SELECT SCOPE_IDENTITY() AS si, @@IDENTITY AS ii").await;
    assert_eq!(r[0].get::<tiberius::numeric::Numeric, _>("si"), None);
    assert_eq!(
        r[0].get::<tiberius::numeric::Numeric, _>("ii")
            .map(|n| n.value()),
        Some(3)
    );
    // OUTPUT INSERTED through the wire.
    let r = rows(
        &mut c,
        "INSERT INTO H (RECid, ad) OUTPUT INSERTED.RECno VALUES (0, N'a'), (0, N'b')",
    )
    .await;
    let ids: Vec<i32> = r.iter().map(|r| r.get("RECno").unwrap()).collect();
    assert_eq!(ids, vec![4, 5]);
    let n = c
        .execute("DELETE FROM H WHERE RECno > @P1", &[&3i32])
        .await
        .unwrap();
    assert_eq!(n.total(), 2);
}

#[tokio::test]
async fn transactions_and_error_numbers() {
    let env = Env::new().await;
    let mut c = env.client().await;
    let mut other = env.client().await;
    exec(
        &mut c,
        "CREATE TABLE P (id int NOT NULL CONSTRAINT PK_P PRIMARY KEY);
         CREATE TABLE E (id int NOT NULL CONSTRAINT PK_E PRIMARY KEY, code nvarchar(3) NOT NULL, p int NULL CONSTRAINT FK_E_P REFERENCES P (id));
         CREATE UNIQUE INDEX IX_E_code ON E (code);
         INSERT INTO P VALUES (1)",
    )
    .await;
    exec(&mut c, "INSERT INTO E (id, code, p) VALUES (1, N'a', 1)").await;
    assert_eq!(
        err_code(&mut c, "INSERT INTO E (id, code) VALUES (1, N'b')").await,
        2627
    );
    assert_eq!(
        err_code(&mut c, "INSERT INTO E (id, code) VALUES (2, N'A')").await,
        2601
    );
    assert_eq!(
        err_code(&mut c, "INSERT INTO E (id, code, p) VALUES (3, N'c', 9)").await,
        547
    );
    assert_eq!(
        err_code(&mut c, "INSERT INTO E (id, code) VALUES (4, NULL)").await,
        515
    );
    assert_eq!(
        err_code(&mut c, "INSERT INTO E (id, code) VALUES (5, N'long')").await,
        8152
    );
    assert_eq!(err_code(&mut c, "SELECT * FROM Nope").await, 208);
    assert_eq!(err_code(&mut c, "SELECT nope FROM E").await, 207);
    assert_eq!(err_code(&mut c, "SELECT 1 LIMIT 1").await, 102);

    // Nested transactions: inner COMMIT only decrements, ROLLBACK undoes all.
    exec(
        &mut c,
        "BEGIN TRAN; BEGIN TRAN; INSERT INTO E (id, code) VALUES (10, N'x'); COMMIT",
    )
    .await;
    let r = rows(&mut c, "SELECT @@TRANCOUNT AS tc").await;
    assert_eq!(r[0].get::<i32, _>("tc"), Some(1));
    let r = rows(&mut other, "SELECT COUNT(*) AS n FROM E WITH (NOLOCK)").await;
    assert_eq!(
        r[0].get::<i32, _>("n"),
        Some(1),
        "NOLOCK does not read uncommitted rows here (READ COMMITTED)"
    );
    exec(&mut c, "ROLLBACK").await;
    let r = rows(&mut c, "SELECT COUNT(*) AS n, @@TRANCOUNT AS tc FROM E").await;
    assert_eq!(r[0].get::<i32, _>("n"), Some(1));
    assert_eq!(r[0].get::<i32, _>("tc"), Some(0));

    // Statement-level atomicity: the duplicate fails alone, the transaction commits the rest.
    assert_eq!(
        err_code(&mut c, "BEGIN TRAN; INSERT INTO E (id, code) VALUES (20, N'y'); INSERT INTO E (id, code) VALUES (20, N'z')").await,
        2627
    );
    exec(&mut c, "INSERT INTO E (id, code) VALUES (21, N'w'); COMMIT").await;
    let r = rows(&mut other, "SELECT COUNT(*) AS n FROM E").await;
    assert_eq!(r[0].get::<i32, _>("n"), Some(3));

    // XACT_ABORT ON: the whole transaction is rolled back.
    assert_eq!(
        err_code(&mut c, "SET XACT_ABORT ON; BEGIN TRAN; INSERT INTO E (id, code) VALUES (30, N'q'); INSERT INTO E (id, code) VALUES (30, N'r')").await,
        2627
    );
    let r = rows(&mut c, "SELECT COUNT(*) AS n, @@TRANCOUNT AS tc FROM E").await;
    assert_eq!(r[0].get::<i32, _>("n"), Some(3));
    assert_eq!(r[0].get::<i32, _>("tc"), Some(0));
}

#[tokio::test]
async fn updlock_holdlock_numbering_and_applocks_across_connections() {
    let env = Env::new().await;
    let mut setup = env.client().await;
    exec(
        &mut setup,
        "CREATE TABLE Doc (seri nvarchar(10) NOT NULL, sira int NOT NULL)",
    )
    .await;
    let worker = || async {
        let mut c = env.client().await;
        for _ in 0..20 {
            exec(&mut c, "BEGIN TRAN").await;
            let r = c
                .query(
                    "SELECT ISNULL(MAX(sira),0)+1 FROM Doc WITH (UPDLOCK, HOLDLOCK) WHERE seri = @P1",
                    &[&"A"],
                )
                .await
                .unwrap()
                .into_first_result()
                .await
                .unwrap();
            let next: i32 = r[0].get(0).unwrap();
            c.execute(
                "INSERT INTO Doc (seri, sira) VALUES (@P1, @P2)",
                &[&"A", &next],
            )
            .await
            .unwrap();
            exec(&mut c, "COMMIT TRAN").await;
        }
    };
    tokio::join!(worker(), worker(), worker());
    let r = rows(
        &mut setup,
        "SELECT COUNT(*) AS n, COUNT(DISTINCT sira) AS d FROM Doc",
    )
    .await;
    assert_eq!(r[0].get::<i32, _>("n"), Some(60));
    assert_eq!(
        r[0].get::<i32, _>("d"),
        Some(60),
        "duplicate document numbers"
    );

    // sp_getapplock return codes through the wire.
    let mut a = env.client().await;
    let mut b = env.client().await;
    let r = rows(
        &mut a,
        "BEGIN TRAN; DECLARE @rc int; EXEC @rc = sp_getapplock @Resource = N'CHA-63-A', @LockMode = 'Exclusive', @LockOwner = 'Transaction', @LockTimeout = 1000; SELECT @rc AS rc",
    )
    .await;
    assert_eq!(r[0].get::<i32, _>("rc"), Some(0));
    let r = rows(
        &mut b,
        "BEGIN TRAN; DECLARE @rc int; EXEC @rc = sp_getapplock @Resource = N'CHA-63-A', @LockMode = 'Exclusive', @LockOwner = 'Transaction', @LockTimeout = 0; SELECT @rc AS rc",
    )
    .await;
    assert_eq!(r[0].get::<i32, _>("rc"), Some(-1));
    exec(&mut a, "COMMIT").await;
    let r = rows(
        &mut b,
        "DECLARE @rc int; EXEC @rc = sp_getapplock @Resource = N'CHA-63-A', @LockMode = 'Exclusive', @LockOwner = 'Transaction', @LockTimeout = 0; SELECT @rc AS rc",
    )
    .await;
    assert_eq!(r[0].get::<i32, _>("rc"), Some(0));
    exec(&mut b, "ROLLBACK").await;
}

#[tokio::test]
async fn turkish_equality_and_strict_rejection() {
    let env = Env::new().await;
    let mut c = env.client().await;
    exec(&mut c, "CREATE TABLE CARI (cari_kod nvarchar(25) NOT NULL PRIMARY KEY, cari_unvan1 nvarchar(50) NOT NULL)").await;
    c.execute(
        "INSERT INTO CARI VALUES (@P1, @P2)",
        &[&"120.01.001", &"IŞIK İNŞAAT"],
    )
    .await
    .unwrap();
    let r = c
        .query(
            "SELECT cari_kod FROM CARI WHERE cari_unvan1 = @P1",
            &[&"ışık inşaat"],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(r.len(), 1);
    let r = c
        .query(
            "SELECT cari_kod FROM CARI WHERE cari_unvan1 = @P1",
            &[&"isik insaat"],
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(r.len(), 0, "I/ı and İ/i are different letters in Turkish");
    for sql in [
        "SELECT cari_kod FROM CARI LIMIT 1",
        "SELECT cari_kod::text FROM CARI",
        "SELECT now()",
        "SELECT cari_kod FROM CARI WHERE cari_kod ILIKE '1%'",
        "SELECT cari_kod || 'x' FROM CARI",
        "INSERT INTO CARI VALUES (N'a', N'b') ON CONFLICT DO NOTHING",
        "INSERT INTO CARI VALUES (N'a', N'b') RETURNING cari_kod",
    ] {
        assert_eq!(err_code(&mut c, sql).await, 102, "{sql}");
    }
    let r = rows(&mut c, "SELECT COUNT(*) AS n FROM CARI").await;
    assert_eq!(r[0].get::<i32, _>("n"), Some(1));
}

#[tokio::test]
async fn deadlock_victim_gets_1205_and_its_transaction_is_rolled_back() {
    let env = Env::new().await;
    let mut a = env.client().await;
    let mut b = env.client().await;
    exec(&mut a, "CREATE TABLE DL (id int NOT NULL PRIMARY KEY, v int NOT NULL); INSERT INTO DL VALUES (1, 0), (2, 0)").await;
    exec(&mut a, "BEGIN TRAN; UPDATE DL SET v = 1 WHERE id = 1").await;
    exec(&mut b, "BEGIN TRAN; UPDATE DL SET v = 2 WHERE id = 2").await;
    let (ra, rb) = tokio::join!(
        err_code(&mut a, "UPDATE DL SET v = 1 WHERE id = 2"),
        err_code(&mut b, "UPDATE DL SET v = 2 WHERE id = 1")
    );
    let mut codes = vec![ra, rb];
    codes.sort();
    assert_eq!(codes, vec![0, 1205]);
    let (victim, survivor) = if ra == 1205 {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let r = rows(victim, "SELECT @@TRANCOUNT AS tc").await;
    assert_eq!(
        r[0].get::<i32, _>("tc"),
        Some(0),
        "the victim's transaction is rolled back"
    );
    exec(survivor, "COMMIT").await;
    let r = rows(victim, "SELECT SUM(v) AS s FROM DL").await;
    assert!(matches!(r[0].get::<i32, _>("s"), Some(2) | Some(4)));
}
