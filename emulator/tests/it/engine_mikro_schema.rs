//! The Mikro reference schema (`sql/mikro/*.sql`) loads through the engine unchanged, twice
//! (idempotent), and the daemon's statement shapes run against it.

use crate::engine_support;

use engine_support::*;
use mikro_emulator::value::{SqlType, Value};

fn schema_files() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql/mikro");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .expect("sql/mikro")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn mikro_schema_loads_twice_and_daemon_shapes_run() {
    let db = db().await;
    let mut s = db.session().await;
    let files = schema_files();
    assert!(files.len() >= 10, "{files:?}");
    for round in 0..2 {
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            let out = run(&mut s, &text).await;
            assert!(
                errors(&out).is_empty(),
                "round {round} {}: {:?}",
                f.display(),
                error_messages(&out)
            );
        }
    }
    let out = ok(&mut s, "SELECT COUNT(*) AS n FROM dbo.CARI_HESAPLAR").await;
    assert!(matches!(scalar(&out).1, Value::Int(n) if n >= 8));
    let out = ok(&mut s, "SELECT TOP 1 cari_RECno, cari_kod, cari_create_date, cari_iptal FROM CARI_HESAPLAR ORDER BY cari_RECno").await;
    let (c, r) = rowset(&out, 0);
    assert_eq!(c[0].ty, SqlType::Int);
    assert_eq!(c[2].ty, SqlType::DateTime);
    assert_eq!(c[3].ty, SqlType::TinyInt);
    assert_eq!(r[0][1], txt("120.01.001"));
    // Numbering under UPDLOCK, HOLDLOCK inside a transaction.
    let sql = "SELECT ISNULL(MAX(cha_evrakno_sira),0)+1 FROM CARI_HESAP_HAREKETLERI WITH (UPDLOCK, HOLDLOCK) WHERE cha_evrak_tip = @P1 AND cha_evrakno_seri = @P2";
    ok(&mut s, "BEGIN TRAN").await;
    let out = ok_p(
        &mut s,
        sql,
        &[
            p("@P1", SqlType::Int, Value::Int(63)),
            p("@P2", SqlType::NVarChar(Some(4000)), txt("A")),
        ],
    )
    .await;
    let (c, r) = rowset(&out, 0);
    assert_eq!(c[0].ty, SqlType::Int);
    assert_eq!(c[0].name, "");
    assert!(matches!(r[0][0], Value::Int(n) if n >= 1));
    ok(&mut s, "COMMIT TRAN").await;
    // sys.tables lists the schema.
    let out = ok(
        &mut s,
        "SELECT name FROM sys.tables WHERE name = N'STOKLAR'",
    )
    .await;
    assert_eq!(rowset(&out, 0).1, vec![vec![txt("STOKLAR")]]);

    // ANALYZE of a wide Mikro table reads only its key columns: indexed and primary-key
    // columns keep the default statistics target, the others have none; a narrow table keeps
    // every column's statistics.
    ok(
        &mut s,
        "CREATE TABLE dbo.NARROW (n_id int PRIMARY KEY, n_note nvarchar(20))",
    )
    .await;
    let (pg, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("backing database");
    tokio::spawn(conn);
    let targets: std::collections::HashMap<String, i32> = pg
        .query(
            "SELECT c.relname || '.' || a.attname, a.attstattarget::int4 FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'dbo' AND c.relkind = 'r' AND a.attnum > 0",
            &[],
        )
        .await
        .expect("pg_attribute")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let cha = |c: &str| targets.get(&format!("carı_hesap_hareketlerı.{c}")).copied();
    for keyed in [
        "cha_evrak_tip",
        "cha_evrakno_sira",
        "cha_kod",
        "cha_lastup_date",
        "cha_recno",
    ] {
        assert_eq!(cha(keyed), Some(-1), "{keyed}");
    }
    for unkeyed in ["cha_aciklama", "cha_meblag", "cha_karsid_kur"] {
        assert_eq!(cha(unkeyed), Some(0), "{unkeyed}");
    }
    assert_eq!(targets.get("narrow.n_note").copied(), Some(-1));
}
