//! Type round trips through tiberius 0.12: every parameter type tiberius sends (including
//! NULLs and PLP strings over 4000 bytes) goes in through RPC `sp_executesql`, comes back as a
//! typed result column (`SELECT @P1 AS v`), and is read with the strict Rust type SQL Server
//! would require. Also transactions through `BEGIN TRAN` text and a 10 000-row result.
//!
//! These need the T-SQL engine (parameter binding, result typing, CREATE TABLE); the protocol
//! layer is the same either way.

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

#[tokio::test]
#[ignore = "needs the T-SQL engine (parameter binding and result typing); the stub passes SQL to PostgreSQL"]
async fn parameters_round_trip_with_their_types() {
    let (_pg, _emu, mut c) = setup().await;

    let r = echo(&mut c, &42i32).await;
    assert_eq!(r.columns()[0].name(), "v");
    assert_eq!(r.get::<i32, _>(0), Some(42));
    assert_eq!(echo(&mut c, &-7i64).await.get::<i64, _>(0), Some(-7));
    assert_eq!(
        echo(&mut c, &i64::MAX).await.get::<i64, _>(0),
        Some(i64::MAX)
    );
    assert_eq!(echo(&mut c, &-300i16).await.get::<i16, _>(0), Some(-300));
    assert_eq!(echo(&mut c, &200u8).await.get::<u8, _>(0), Some(200));
    assert_eq!(echo(&mut c, &true).await.get::<bool, _>(0), Some(true));
    assert_eq!(echo(&mut c, &1.5f64).await.get::<f64, _>(0), Some(1.5));
    assert_eq!(echo(&mut c, &2.25f32).await.get::<f32, _>(0), Some(2.25));

    let d: Decimal = "-12345.67".parse().unwrap();
    assert_eq!(echo(&mut c, &d).await.get::<Decimal, _>(0), Some(d));
    let d: Decimal = "99999999999999.9999".parse().unwrap();
    assert_eq!(echo(&mut c, &d).await.get::<Decimal, _>(0), Some(d));

    let s = "Çağrı Şişli İĞÜÖ ığüö";
    assert_eq!(echo(&mut c, &s).await.get::<&str, _>(0), Some(s));
    // Over 4000 bytes: tiberius sends nvarchar(max) as PLP.
    let long = "Ö".repeat(9_000);
    let r = echo(&mut c, &long.as_str()).await;
    assert_eq!(r.get::<&str, _>(0), Some(long.as_str()));
    assert_eq!(echo(&mut c, &"").await.get::<&str, _>(0), Some(""));

    let dt: NaiveDateTime = NaiveDate::from_ymd_opt(2026, 11, 27)
        .unwrap()
        .and_hms_nano_opt(13, 45, 10, 123_456_700)
        .unwrap();
    assert_eq!(echo(&mut c, &dt).await.get::<NaiveDateTime, _>(0), Some(dt));
    let date = NaiveDate::from_ymd_opt(1999, 12, 31).unwrap();
    assert_eq!(echo(&mut c, &date).await.get::<NaiveDate, _>(0), Some(date));
    let g = Uuid::new_v4();
    assert_eq!(echo(&mut c, &g).await.get::<Uuid, _>(0), Some(g));
    let bytes: Vec<u8> = vec![0, 1, 2, 255];
    assert_eq!(
        echo(&mut c, &bytes.as_slice()).await.get::<&[u8], _>(0),
        Some(bytes.as_slice())
    );
}

#[tokio::test]
#[ignore = "needs the T-SQL engine (parameter binding and result typing); the stub passes SQL to PostgreSQL"]
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
#[ignore = "needs the T-SQL engine (parameter binding and result typing); the stub passes SQL to PostgreSQL"]
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
    // datetime keeps 1/300 s: .997 stays .997 (rounded to 1/300 s ticks).
    let created = row.get::<NaiveDateTime, _>("created").unwrap();
    assert_eq!(created.format("%H:%M:%S%.3f").to_string(), "03:04:05.997");
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
#[ignore = "needs the T-SQL engine (parameter binding and result typing); the stub passes SQL to PostgreSQL"]
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
