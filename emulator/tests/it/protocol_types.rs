//! Type round trips through tiberius 0.12: every parameter type tiberius sends (including
//! NULLs and PLP strings over 4000 bytes) goes in through RPC `sp_executesql`, comes back as a
//! typed result column (`SELECT @P1 AS v`), and is read with the strict Rust type SQL Server
//! would require. Also transactions through `BEGIN TRAN` text and a 10 000-row result.
//!
//! These go through the T-SQL engine (parameter binding, result typing, CREATE TABLE) as well
//! as the protocol layer.

use chrono::{NaiveDate, NaiveDateTime};
use mikro_emulator::pgcluster::PgCluster;
use mikro_emulator::{start, EmulatorConfig, EmulatorHandle, TlsMode};
use rust_decimal::Decimal;
use tiberius::{AuthMethod, Client, Config, EncryptionLevel, Row, ToSql};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};
use uuid::Uuid;

const USER: &str = "sa";
const PASSWORD: &str = "Types-Test_1";
const DB: &str = "MikroDB";

async fn setup() -> (PgCluster, EmulatorHandle, Client<Compat<TcpStream>>) {
    let pg = PgCluster::start().await.expect("start PostgreSQL");
    pg.create_database("types").await.expect("create database");
    let emu = start(EmulatorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        pg_url: pg.url("types"),
        user: USER.into(),
        password: PASSWORD.into(),
        database: DB.into(),
        tls: TlsMode::Optional,
    })
    .await
    .expect("start emulator");
    let mut c = Config::new();
    c.host("127.0.0.1");
    c.port(emu.addr.port());
    c.authentication(AuthMethod::sql_server(USER, PASSWORD));
    c.encryption(EncryptionLevel::Required);
    c.trust_cert();
    c.database(DB);
    let tcp = TcpStream::connect(c.get_addr()).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let client = Client::connect(c, tcp.compat_write()).await.expect("login");
    (pg, emu, client)
}

async fn echo(c: &mut Client<Compat<TcpStream>>, p: &dyn ToSql) -> Row {
    c.query("SELECT @P1 AS v", &[p])
        .await
        .expect("query")
        .into_row()
        .await
        .expect("row")
        .expect("one row")
}

/// Sends `p` as `@P1`, reads it back with `get` and compares; returns a description on
/// mismatch so one run reports every failing type.
async fn check<T, G>(
    c: &mut Client<Compat<TcpStream>>,
    what: &str,
    p: &dyn ToSql,
    want: Option<T>,
    get: G,
) -> Option<String>
where
    T: PartialEq + std::fmt::Debug,
    G: Fn(&Row) -> tiberius::Result<Option<T>>,
{
    let stream = match c.query("SELECT @P1 AS v", &[p]).await {
        Ok(s) => s,
        Err(e) => return Some(format!("{what}: query failed: {e}")),
    };
    let row = match stream.into_row().await {
        Ok(Some(r)) => r,
        Ok(None) => return Some(format!("{what}: no row")),
        Err(e) => return Some(format!("{what}: reading failed: {e}")),
    };
    if row.columns()[0].name() != "v" {
        return Some(format!(
            "{what}: column named {:?}",
            row.columns()[0].name()
        ));
    }
    match get(&row) {
        Ok(got) if got == want => None,
        Ok(got) => Some(format!("{what}: got {got:?}, want {want:?}")),
        Err(e) => Some(format!("{what}: wrong type: {e}")),
    }
}

fn owned_str(r: &Row) -> tiberius::Result<Option<String>> {
    r.try_get::<&str, _>(0).map(|o| o.map(str::to_string))
}

fn owned_bytes(r: &Row) -> tiberius::Result<Option<Vec<u8>>> {
    r.try_get::<&[u8], _>(0).map(|o| o.map(<[u8]>::to_vec))
}

#[tokio::test]
async fn parameters_round_trip_with_their_types() {
    let (_pg, _emu, mut c) = setup().await;
    let d1: Decimal = "-12345.67".parse().unwrap();
    let d2: Decimal = "99999999999999.9999".parse().unwrap();
    let s = "Çağrı Şişli İĞÜÖ ığüö";
    // Over 4000 bytes: tiberius sends nvarchar(max) as PLP.
    let long = "Ö".repeat(9_000);
    let dt: NaiveDateTime = NaiveDate::from_ymd_opt(2026, 11, 27)
        .unwrap()
        .and_hms_nano_opt(13, 45, 10, 123_456_700)
        .unwrap();
    let date = NaiveDate::from_ymd_opt(1999, 12, 31).unwrap();
    let g = Uuid::new_v4();
    let bytes: Vec<u8> = vec![0, 1, 2, 255];
    let failures: Vec<String> = vec![
        check(&mut c, "int", &42i32, Some(42i32), |r: &Row| r.try_get(0)).await,
        check(&mut c, "bigint", &-7i64, Some(-7i64), |r: &Row| {
            r.try_get(0)
        })
        .await,
        check(
            &mut c,
            "bigint max",
            &i64::MAX,
            Some(i64::MAX),
            |r: &Row| r.try_get(0),
        )
        .await,
        check(&mut c, "smallint", &-300i16, Some(-300i16), |r: &Row| {
            r.try_get(0)
        })
        .await,
        check(&mut c, "tinyint", &200u8, Some(200u8), |r: &Row| {
            r.try_get(0)
        })
        .await,
        check(&mut c, "bit", &true, Some(true), |r: &Row| r.try_get(0)).await,
        check(&mut c, "float", &1.5f64, Some(1.5f64), |r: &Row| {
            r.try_get(0)
        })
        .await,
        check(&mut c, "real", &2.25f32, Some(2.25f32), |r: &Row| {
            r.try_get(0)
        })
        .await,
        check(&mut c, "decimal(7,2)", &d1, Some(d1), |r: &Row| {
            r.try_get(0)
        })
        .await,
        check(&mut c, "decimal(18,4)", &d2, Some(d2), |r: &Row| {
            r.try_get(0)
        })
        .await,
        check(&mut c, "nvarchar", &s, Some(s.to_string()), owned_str).await,
        check(
            &mut c,
            "nvarchar(max)",
            &long.as_str(),
            Some(long.clone()),
            owned_str,
        )
        .await,
        check(
            &mut c,
            "empty nvarchar",
            &"",
            Some(String::new()),
            owned_str,
        )
        .await,
        check(&mut c, "datetime2", &dt, Some(dt), |r: &Row| r.try_get(0)).await,
        check(&mut c, "date", &date, Some(date), |r: &Row| r.try_get(0)).await,
        check(&mut c, "uniqueidentifier", &g, Some(g), |r: &Row| {
            r.try_get(0)
        })
        .await,
        check(
            &mut c,
            "varbinary",
            &bytes.as_slice(),
            Some(bytes.clone()),
            owned_bytes,
        )
        .await,
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(
        failures.is_empty(),
        "failing types:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn null_parameters_keep_their_declared_types() {
    let (_pg, _emu, mut c) = setup().await;
    assert_eq!(
        echo(&mut c, &Option::<i32>::None).await.get::<i32, _>(0),
        None
    );
    assert_eq!(
        echo(&mut c, &Option::<i64>::None).await.get::<i64, _>(0),
        None
    );
    assert_eq!(
        echo(&mut c, &Option::<bool>::None).await.get::<bool, _>(0),
        None
    );
    assert_eq!(
        echo(&mut c, &Option::<f64>::None).await.get::<f64, _>(0),
        None
    );
    assert_eq!(
        echo(&mut c, &Option::<&str>::None).await.get::<&str, _>(0),
        None
    );
    assert_eq!(
        echo(&mut c, &Option::<Decimal>::None)
            .await
            .get::<Decimal, _>(0),
        None
    );
    assert_eq!(
        echo(&mut c, &Option::<NaiveDateTime>::None)
            .await
            .get::<NaiveDateTime, _>(0),
        None
    );
    assert_eq!(
        echo(&mut c, &Option::<NaiveDate>::None)
            .await
            .get::<NaiveDate, _>(0),
        None
    );
    assert_eq!(
        echo(&mut c, &Option::<Uuid>::None).await.get::<Uuid, _>(0),
        None
    );
}

#[tokio::test]
async fn typed_columns_from_a_table_and_ten_thousand_rows() {
    let (_pg, _emu, mut c) = setup().await;
    c.simple_query(
        "CREATE TABLE t (id int IDENTITY(1,1) PRIMARY KEY, small smallint NOT NULL, tiny tinyint NOT NULL, \
         big bigint NOT NULL, f float NOT NULL, amount decimal(18,4) NOT NULL, flag bit NOT NULL, \
         created datetime NOT NULL, d date NOT NULL, name nvarchar(50) NOT NULL, g uniqueidentifier NULL)",
    )
    .await
    .unwrap()
    .into_results()
    .await
    .unwrap();
    let r = c
        .execute(
            "INSERT INTO t (small, tiny, big, f, amount, flag, created, d, name, g) \
             VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7, @P8, @P9, @P10)",
            &[
                &-5i16,
                &7u8,
                &9_000_000_000i64,
                &0.25f64,
                &"1234.5".parse::<Decimal>().unwrap(),
                &false,
                &NaiveDate::from_ymd_opt(2024, 1, 2)
                    .unwrap()
                    .and_hms_milli_opt(3, 4, 5, 997)
                    .unwrap(),
                &NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(),
                &"Kırtasiye",
                &Option::<Uuid>::None,
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.total(), 1);
    let row = c
        .query(
            "SELECT id, small, tiny, big, f, amount, flag, created, d, name, g FROM t",
            &[],
        )
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.get::<i32, _>("id"), Some(1));
    assert_eq!(row.get::<i16, _>("small"), Some(-5));
    assert_eq!(row.get::<u8, _>("tiny"), Some(7));
    assert_eq!(row.get::<i64, _>("big"), Some(9_000_000_000));
    assert_eq!(row.get::<f64, _>("f"), Some(0.25));
    assert_eq!(
        row.get::<Decimal, _>("amount"),
        Some("1234.5000".parse().unwrap())
    );
    assert_eq!(row.get::<bool, _>("flag"), Some(false));
    // datetime keeps 1/300 s ticks: .997 is stored as 299/300 s (SQL Server prints .997;
    // tiberius decodes the tick exactly, .996666…).
    let created = row.get::<NaiveDateTime, _>("created").unwrap();
    assert_eq!(
        created.format("%H:%M:%S%.6f").to_string(),
        "03:04:05.996666"
    );
    assert_eq!(
        row.get::<NaiveDate, _>("d"),
        NaiveDate::from_ymd_opt(2024, 1, 2)
    );
    assert_eq!(row.get::<&str, _>("name"), Some("Kırtasiye"));
    assert_eq!(row.get::<Uuid, _>("g"), None);

    // 10 000 rows come back over many packets.
    c.simple_query("CREATE TABLE big (id int NOT NULL, name nvarchar(50) NOT NULL)")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    for chunk in 0..10 {
        let values: Vec<String> = (0..1000)
            .map(|i| {
                let id = chunk * 1000 + i;
                format!("({id}, N'ürün {id}')")
            })
            .collect();
        let r = c
            .execute(
                format!("INSERT INTO big (id, name) VALUES {}", values.join(",")),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(r.total(), 1000);
    }
    let rows = c
        .query("SELECT id, name FROM big ORDER BY id", &[])
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    assert_eq!(rows.len(), 10_000);
    assert_eq!(rows[9_999].get::<i32, _>(0), Some(9_999));
    assert_eq!(rows[9_999].get::<&str, _>(1), Some("ürün 9999"));
}

#[tokio::test]
async fn transactions_through_begin_tran_text() {
    let (_pg, _emu, mut c) = setup().await;
    c.simple_query("CREATE TABLE tx (id int NOT NULL)")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    for (finish, expected) in [("ROLLBACK TRAN", 0), ("COMMIT TRAN", 1)] {
        c.simple_query("BEGIN TRAN")
            .await
            .unwrap()
            .into_results()
            .await
            .unwrap();
        // Inside the transaction tiberius echoes the descriptor from ENVCHANGE 8 in
        // ALL_HEADERS of the RPC.
        c.execute("INSERT INTO tx (id) VALUES (@P1)", &[&1i32])
            .await
            .unwrap();
        let n = c
            .query("SELECT @@TRANCOUNT AS n", &[])
            .await
            .unwrap()
            .into_row()
            .await
            .unwrap()
            .unwrap()
            .get::<i32, _>(0);
        assert_eq!(n, Some(1));
        c.simple_query(finish)
            .await
            .unwrap()
            .into_results()
            .await
            .unwrap();
        let count = c
            .query("SELECT COUNT(*) AS n FROM tx", &[])
            .await
            .unwrap()
            .into_row()
            .await
            .unwrap()
            .unwrap()
            .get::<i32, _>(0);
        assert_eq!(count, Some(expected), "after {finish}");
    }
}

#[tokio::test]
async fn more_column_types_varchar_money_real_datetime2() {
    let (_pg, _emu, mut c) = setup().await;
    c.simple_query(
        "CREATE TABLE m (v varchar(20) NOT NULL, ch char(3) NOT NULL, r real NOT NULL, \
         p money NOT NULL, t datetime2(3) NOT NULL, nv nvarchar(max) NULL, b varbinary(16) NULL)",
    )
    .await
    .unwrap()
    .into_results()
    .await
    .unwrap();
    c.execute(
        "INSERT INTO m (v, ch, r, p, t, nv, b) VALUES (@P1, @P2, @P3, @P4, @P5, @P6, @P7)",
        &[
            &"Şişli Ağaç",
            &"ABC",
            &1.25f32,
            &"12.3456".parse::<Decimal>().unwrap(),
            &NaiveDate::from_ymd_opt(2025, 6, 30)
                .unwrap()
                .and_hms_milli_opt(23, 59, 58, 123)
                .unwrap(),
            &"ü".repeat(5000).as_str(),
            &[1u8, 2, 3].as_slice(),
        ],
    )
    .await
    .unwrap();
    let row = c
        .query("SELECT v, ch, r, p, t, nv, b FROM m", &[])
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .unwrap();
    // varchar travels in cp1254 (Turkish_CI_AS) and tiberius decodes it with the collation.
    assert_eq!(row.get::<&str, _>("v"), Some("Şişli Ağaç"));
    assert_eq!(row.get::<&str, _>("ch"), Some("ABC"));
    assert_eq!(row.get::<f32, _>("r"), Some(1.25));
    assert_eq!(
        row.get::<Decimal, _>("p"),
        Some("12.3456".parse().unwrap()),
        "money travels as decimal(19,4)"
    );
    assert_eq!(
        row.get::<NaiveDateTime, _>("t"),
        Some(
            NaiveDate::from_ymd_opt(2025, 6, 30)
                .unwrap()
                .and_hms_milli_opt(23, 59, 58, 123)
                .unwrap()
        )
    );
    assert_eq!(
        row.get::<&str, _>("nv").map(|s| s.chars().count()),
        Some(5000)
    );
    assert_eq!(row.get::<&[u8], _>("b"), Some(&[1u8, 2, 3][..]));
}

#[tokio::test]
async fn shutdown_rolls_back_open_transactions() {
    let (pg, emu, mut c) = setup().await;
    c.simple_query("CREATE TABLE s (id int NOT NULL)")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    c.simple_query("BEGIN TRAN")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    c.execute("INSERT INTO s (id) VALUES (@P1)", &[&1i32])
        .await
        .unwrap();
    emu.shutdown().await;
    assert!(
        c.simple_query("SELECT 1").await.is_err(),
        "connection closed"
    );

    // A new emulator on the same database sees no row: the open transaction was rolled back.
    let emu = start(EmulatorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        pg_url: pg.url("types"),
        user: USER.into(),
        password: PASSWORD.into(),
        database: DB.into(),
        tls: TlsMode::Off,
    })
    .await
    .unwrap();
    let mut cfg = Config::new();
    cfg.host("127.0.0.1");
    cfg.port(emu.addr.port());
    cfg.authentication(AuthMethod::sql_server(USER, PASSWORD));
    cfg.encryption(EncryptionLevel::NotSupported);
    let tcp = TcpStream::connect(cfg.get_addr()).await.unwrap();
    let mut c = Client::connect(cfg, tcp.compat_write()).await.unwrap();
    let n = c
        .query("SELECT COUNT(*) AS n FROM s", &[])
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .unwrap()
        .get::<i32, _>(0);
    assert_eq!(n, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_connections_do_not_cross_talk() {
    let (_pg, emu, _c) = setup().await;
    let port = emu.addr.port();
    let mut tasks = Vec::new();
    for t in 0..12i32 {
        tasks.push(tokio::spawn(async move {
            let mut cfg = Config::new();
            cfg.host("127.0.0.1");
            cfg.port(port);
            cfg.authentication(AuthMethod::sql_server(USER, PASSWORD));
            // Half plaintext, half TLS.
            cfg.encryption(if t % 2 == 0 {
                EncryptionLevel::NotSupported
            } else {
                EncryptionLevel::Required
            });
            cfg.trust_cert();
            let tcp = TcpStream::connect(cfg.get_addr()).await.unwrap();
            let mut c = Client::connect(cfg, tcp.compat_write()).await.unwrap();
            for i in 0..40i32 {
                let v = t * 1000 + i;
                let s = format!("bağlantı {t} sorgu {i}");
                let row = c
                    .query("SELECT @P1 AS n, @P2 AS s", &[&v, &s.as_str()])
                    .await
                    .unwrap()
                    .into_row()
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(row.get::<i32, _>(0), Some(v));
                assert_eq!(row.get::<&str, _>(1), Some(s.as_str()));
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
}
