//! The test harness as other projects use it: it starts, the Mikro schema and seed are there and
//! reachable through both ADO strings, the schema is strict (NOT NULL without defaults, unique
//! codes), the files are idempotent, and dropping it leaves nothing behind.

use mikro_emulator::harness::{Harness, HarnessOptions, MIKRO_SCHEMA, MIKRO_SEED};
use tiberius::{Client, Config};
use tokio::net::TcpStream;
use tokio_util::compat::TokioAsyncWriteCompatExt;

async fn count(c: &mut mikro_emulator::harness::ErpClient, sql: &str) -> i32 {
    let row = c
        .simple_query(sql)
        .await
        .expect("query")
        .into_row()
        .await
        .expect("row")
        .expect("one row");
    row.get::<i32, _>(0).expect("int")
}

fn server_error_code(e: &tiberius::error::Error) -> Option<u32> {
    match e {
        tiberius::error::Error::Server(t) => Some(t.code()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_starts_with_mikro_schema_seed_and_web_reference() {
    let h = Harness::start(HarnessOptions::default())
        .await
        .expect("harness");
    eprintln!("harness started in {:?}", h.started_in());

    let mut erp = h.erp_client().await.expect("erp client");
    assert_eq!(
        count(&mut erp, "SELECT COUNT(*) FROM CARI_HESAPLAR").await,
        8
    );
    assert_eq!(count(&mut erp, "SELECT COUNT(*) FROM STOKLAR").await, 12);
    assert_eq!(
        count(&mut erp, "SELECT COUNT(*) FROM STOK_SATIS_FIYAT_LISTELERI").await,
        24
    );
    assert_eq!(count(&mut erp, "SELECT COUNT(*) FROM BANKALAR").await, 5);
    assert_eq!(
        count(
            &mut erp,
            "SELECT COUNT(*) FROM KASALAR WHERE kas_kod IN (N'001', N'ÇEK', N'SENET')"
        )
        .await,
        3
    );
    // The Mikro program's RECid convention holds for every seed row.
    assert_eq!(
        count(
            &mut erp,
            "SELECT COUNT(*) FROM STOKLAR WHERE sto_RECid_RECno <> sto_RECno"
        )
        .await,
        0
    );
    // The documents tables exist and are empty.
    assert_eq!(
        count(&mut erp, "SELECT COUNT(*) FROM CARI_HESAP_HAREKETLERI").await,
        0
    );
    let row = erp
        .query(
            "SELECT cari_unvan1 FROM CARI_HESAPLAR WHERE cari_kod = @P1",
            &[&"120.01.008"],
        )
        .await
        .expect("query")
        .into_row()
        .await
        .expect("row")
        .expect("customer 120.01.008");
    assert_eq!(row.get::<&str, _>(0), Some("İpek Tekstil Sanayi"));

    // Both ADO strings work: plaintext and TLS (as mikro-sync runs in production).
    for ado in [h.erp_ado(), h.erp_ado_tls()] {
        let config = Config::from_ado_string(&ado).expect("ado");
        let tcp = TcpStream::connect(config.get_addr()).await.expect("tcp");
        let mut c = Client::connect(config, tcp.compat_write())
            .await
            .unwrap_or_else(|e| panic!("connect with {ado}: {e}"));
        assert_eq!(count(&mut c, "SELECT COUNT(*) FROM BANKALAR").await, 5);
    }

    // Web side: reference schema + seed with the same codes, no `kaynak` column yet.
    let web = h.web_client().await.expect("web client");
    let n: i64 = web
        .query_one(
            "SELECT count(*) FROM cari_hesaplar WHERE cari_kodu LIKE '120.01.%'",
            &[],
        )
        .await
        .expect("web count")
        .get(0);
    assert_eq!(n, 8);
    let kaynak: i64 = web
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'kaynak'",
            &[],
        )
        .await
        .expect("columns")
        .get(0);
    assert_eq!(kaynak, 0, "the reference schema must not contain `kaynak`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mikro_schema_is_strict_and_idempotent() {
    let h = Harness::start(HarnessOptions::bare())
        .await
        .expect("harness");
    let mut erp = h.erp_client().await.expect("erp client");

    // A posting that forgets columns fails loudly: NOT NULL without defaults -> 515.
    let err = erp
        .execute(
            "INSERT INTO CARI_HESAPLAR (cari_kod, cari_unvan1) VALUES (@P1, @P2)",
            &[&"120.99.001", &"Eksik Sütunlu Cari"],
        )
        .await
        .expect_err("insert with missing NOT NULL columns must fail");
    assert_eq!(server_error_code(&err), Some(515), "{err}");

    // Loading the schema again changes nothing; the seed loads once and is guarded.
    for (name, sql) in MIKRO_SCHEMA {
        h.erp_exec(sql)
            .await
            .unwrap_or_else(|e| panic!("{name} again: {e}"));
    }
    h.erp_exec(MIKRO_SEED.1).await.expect("seed");
    h.erp_exec(MIKRO_SEED.1).await.expect("seed again");
    assert_eq!(
        count(&mut erp, "SELECT COUNT(*) FROM CARI_HESAPLAR").await,
        8
    );

    // Codes are unique: a second bank '01' is a duplicate key (unique index -> 2601).
    let cols =
        "ban_RECid_DBCno, ban_RECid_RECno, ban_SpecRECno, ban_iptal, ban_fileid, ban_hidden, \
        ban_kilitli, ban_degisti, ban_checksum, ban_create_user, ban_create_date, ban_lastup_user, \
        ban_lastup_date, ban_special1, ban_special2, ban_special3, ban_kod, ban_ismi, ban_sube, \
        ban_hesapno, ban_doviz_cinsi, ban_muh_kod, ban_firma_no";
    let sql = format!(
        "INSERT INTO BANKALAR ({cols}) VALUES (0, 0, 0, 0, 0, 0, 0, 0, 0, 1, '20260105 09:00:00.000', 1, \
         '20260105 09:00:00.000', N'', N'', N'', N'01', N'Kopya Banka', N'', N'', 0, N'', 0)"
    );
    let err = erp
        .simple_query(sql)
        .await
        .expect_err("duplicate ban_kod must fail");
    assert_eq!(server_error_code(&err), Some(2601), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_harness_removes_cluster_and_emulator() {
    let h = Harness::start(HarnessOptions::bare())
        .await
        .expect("harness");
    if h.is_real_sql_server() {
        return;
    }
    let dir = h.pg().socket_dir();
    let pg_port = h.pg().port();
    let erp_port = h.port();
    assert!(dir.exists());
    drop(h);
    assert!(!dir.exists(), "cluster directory {dir:?} left behind");
    assert!(
        TcpStream::connect(("127.0.0.1", pg_port)).await.is_err(),
        "PostgreSQL still listening on {pg_port}"
    );
    // The emulator stops accepting when its handle is dropped; give the accept loop a moment.
    let mut refused = false;
    for _ in 0..50 {
        if TcpStream::connect(("127.0.0.1", erp_port)).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(refused, "emulator still listening on {erp_port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erp_timezone_sets_what_getdate_returns() {
    let h = Harness::start(HarnessOptions {
        erp_timezone: Some("Europe/Istanbul".into()),
        ..HarnessOptions::bare()
    })
    .await
    .expect("harness");
    if h.is_real_sql_server() {
        return;
    }
    let mut erp = h.erp_client().await.expect("erp client");
    // Istanbul is UTC+3 all year (no DST since 2016).
    let minutes = count(&mut erp, "SELECT DATEDIFF(minute, GETUTCDATE(), GETDATE())").await;
    assert_eq!(minutes, 180);
}
