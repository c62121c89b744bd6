//! Helpers for the posting tests (tests/posting_*.rs): a harness with mikro-sync installed on
//! both sides, web documents inserted the way the web app writes them, and generic reads of Mikro
//! rows so every TSV column can be checked for presence and non-NULL-ness.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};

use chrono::{NaiveDate, NaiveDateTime};
use mikro_emulator::harness::{ErpClient, Harness, HarnessOptions};
use mikro_sync::config::Config;
use mikro_sync::mikro::Table;
use mikro_sync::posting::{post_document, DocKind, PostError, Posted, PostingConfig};
use rust_decimal::Decimal;
use tiberius::ColumnData;
use uuid::Uuid;

/// Seed customers (web id → Mikro code 120.01.00N).
pub fn cari(n: u32) -> Uuid {
    format!("c0000000-0000-4000-8000-{n:012}").parse().unwrap()
}
/// Seed products (STK-00NN).
pub fn stok(n: u32) -> Uuid {
    format!("b0000000-0000-4000-8000-{n:012}").parse().unwrap()
}
/// Seed banks by Mikro code ("01", "08", "10" …).
pub fn banka(code: &str) -> Uuid {
    format!("d0000000-0000-4000-8000-0000000000{code}")
        .parse()
        .unwrap()
}
/// Seed cash boxes: 1 = 001, 2 = ÇEK, 3 = SENET, 4 = VERILEN-SENET.
pub fn kasa(n: u32) -> Uuid {
    format!("e0000000-0000-4000-8000-{n:012}").parse().unwrap()
}

/// Harness + a web client + an ERP client, mikro-sync installed on both sides.
pub struct Env {
    pub h: Harness,
    pub web: tokio_postgres::Client,
    pub erp: ErpClient,
    pub cfg: PostingConfig,
}

impl Env {
    pub async fn start() -> Env {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        // Harness starts are serialised within a test binary: two concurrent starts in one
        // process fail to load the Mikro schema (emulator issue, reported); running the tests
        // afterwards in parallel is fine.
        static START: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let guard = START.lock().await;
        let h = Harness::start(HarnessOptions::default())
            .await
            .expect("start harness");
        drop(guard);
        let web = connect(&h.web_url()).await;
        mikro_sync::setup::setup_web(&web).await.expect("setup_web");
        let mut erp = h.erp_client().await.expect("erp client");
        mikro_sync::setup::setup_erp(&mut erp)
            .await
            .expect("setup_erp");
        Env {
            h,
            web,
            erp,
            cfg: PostingConfig::default(),
        }
    }

    /// Posts through the production entry point.
    pub async fn post(&mut self, kind: DocKind, id: Uuid) -> Result<Posted, PostError> {
        post_document(&self.web, &mut self.erp, &self.cfg, kind, id).await
    }

    /// Posts and expects success; `what` names the case in the panic message.
    pub async fn posts(&mut self, kind: DocKind, id: Uuid, what: &str) -> Posted {
        self.post(kind, id)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// Posts with the settings these environment variables give (the other fix a message
    /// proposes), then goes back to the default settings.
    pub async fn posts_with(
        &mut self,
        vars: &[(&str, &str)],
        kind: DocKind,
        id: Uuid,
        what: &str,
    ) -> Posted {
        self.cfg = cfg_from(vars);
        let p = self.posts(kind, id, what).await;
        self.cfg = PostingConfig::default();
        p
    }

    /// Rows of a SELECT, as maps from lower-cased column name to value.
    pub async fn rows(&mut self, sql: &str, p: &[&dyn tiberius::ToSql]) -> Vec<Rec> {
        let rows = self
            .erp
            .query(sql, p)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .into_first_result()
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.into_iter()
            .map(|r| {
                let names: Vec<String> = r.columns().iter().map(|c| c.name().to_string()).collect();
                Rec(names.into_iter().map(|n| n.to_lowercase()).zip(r).collect())
            })
            .collect()
    }

    pub async fn cha(&mut self, recno: i32) -> Rec {
        let mut v = self
            .rows(
                "SELECT * FROM dbo.CARI_HESAP_HAREKETLERI WHERE cha_RECno = @P1",
                &[&recno],
            )
            .await;
        assert_eq!(v.len(), 1, "CHA {recno}");
        v.remove(0)
    }

    pub async fn sth_of(&mut self, cha_recno: i32) -> Vec<Rec> {
        self.rows(
            "SELECT * FROM dbo.STOK_HAREKETLERI WHERE sth_fat_recid_recno = @P1 ORDER BY sth_satirno",
            &[&cha_recno],
        )
        .await
    }

    pub async fn sck_by_refno(&mut self, refno: &str) -> Vec<Rec> {
        self.rows(
            "SELECT * FROM dbo.ODEME_EMIRLERI WHERE sck_refno = @P1",
            &[&refno],
        )
        .await
    }

    pub async fn count(&mut self, sql: &str) -> i64 {
        let r = self.rows(sql, &[]).await;
        r[0].int_at0()
    }

    /// Mikro's rows of everything posting writes: CHA, STH, cheques/notes, ledger.
    pub async fn mikro_counts(&mut self) -> (i64, i64, i64, i64) {
        (
            self.count("SELECT COUNT(*) FROM dbo.CARI_HESAP_HAREKETLERI")
                .await,
            self.count("SELECT COUNT(*) FROM dbo.STOK_HAREKETLERI")
                .await,
            self.count("SELECT COUNT(*) FROM dbo.ODEME_EMIRLERI").await,
            self.count("SELECT COUNT(*) FROM dbo.MIKROSYNC_LEDGER")
                .await,
        )
    }

    /// Posts and expects a data error that contains every needle, with nothing written into
    /// Mikro. Answers the message.
    pub async fn data_error(&mut self, kind: DocKind, id: Uuid, needles: &[&str]) -> String {
        let before = self.mikro_counts().await;
        let m = match self.post(kind, id).await {
            Err(PostError::Data(m)) => m,
            other => panic!("expected a data error containing {needles:?}, got {other:?}"),
        };
        for n in needles {
            assert!(m.contains(n), "{n:?} missing from: {m}");
        }
        assert_eq!(
            self.mikro_counts().await,
            before,
            "a failed posting writes nothing"
        );
        m
    }

    /// [`Env::data_error`] of a validation: its message is one line that names the document's id.
    pub async fn validation_error(&mut self, kind: DocKind, id: Uuid, needles: &[&str]) -> String {
        let m = self.data_error(kind, id, needles).await;
        assert!(m.contains(&id.to_string()), "the id is missing from: {m}");
        assert_eq!(m.lines().count(), 1, "one line: {m}");
        m
    }

    /// Runs one statement on the web database (a fix, done as a message proposes it).
    pub async fn web_exec(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) {
        self.web
            .execute(sql, params)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Inserts one web row (`INSERT … RETURNING id`) and answers its id.
    pub async fn web_insert(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Uuid {
        self.web
            .query_one(sql, params)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get(0)
    }

    /// A new web customer with this code and name, and no mapping.
    pub async fn new_cari(&self, kodu: &str, adi: &str) -> Uuid {
        let sql = "INSERT INTO cari_hesaplar (cari_kodu, cari_adi) VALUES ($1, $2) RETURNING id";
        self.web_insert(sql, &[&kodu, &adi]).await
    }

    /// A new web product with this code and name, and no mapping.
    pub async fn new_stok(&self, kodu: &str, adi: &str) -> Uuid {
        let sql = "INSERT INTO stoklar (stok_kodu, stok_adi) VALUES ($1, $2) RETURNING id";
        self.web_insert(sql, &[&kodu, &adi]).await
    }
}

/// The posting settings as the daemon would read them from these environment variables.
pub fn cfg_from(vars: &[(&str, &str)]) -> PostingConfig {
    let map: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_map(&map).expect("config").posting_config()
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect web");
    tokio::spawn(conn);
    c
}

/// One Mikro row read back.
#[derive(Debug)]
pub struct Rec(pub HashMap<String, ColumnData<'static>>);

impl Rec {
    fn get(&self, col: &str) -> &ColumnData<'static> {
        self.0
            .get(&col.to_lowercase())
            .unwrap_or_else(|| panic!("column {col} missing"))
    }

    pub fn int_at0(&self) -> i64 {
        let v = self.0.values().next().expect("one column");
        as_int(v).expect("int")
    }

    /// Any integer type as i64.
    pub fn int(&self, col: &str) -> i64 {
        as_int(self.get(col))
            .unwrap_or_else(|| panic!("{col} is not an integer: {:?}", self.get(col)))
    }

    pub fn float(&self, col: &str) -> f64 {
        match self.get(col) {
            ColumnData::F64(Some(v)) => *v,
            ColumnData::F32(Some(v)) => f64::from(*v),
            other => panic!("{col} is not a float: {other:?}"),
        }
    }

    pub fn text(&self, col: &str) -> String {
        match self.get(col) {
            ColumnData::String(Some(s)) => s.to_string(),
            other => panic!("{col} is not text: {other:?}"),
        }
    }

    pub fn dt(&self, col: &str) -> NaiveDateTime {
        match self.get(col) {
            ColumnData::DateTime(Some(d)) => {
                let base = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap();
                let date = base + chrono::Duration::days(d.days().into());
                let ms = (u64::from(d.seconds_fragments()) * 1000 + 150) / 300;
                date.and_hms_opt(0, 0, 0).unwrap() + chrono::Duration::milliseconds(ms as i64)
            }
            ColumnData::DateTime2(Some(_)) => panic!("{col} came back as datetime2, not datetime"),
            other => panic!("{col} is not a datetime: {other:?}"),
        }
    }

    /// Every catalog column is present and none is NULL.
    pub fn assert_complete(&self, table: &Table) {
        for c in table.columns {
            let v = self
                .0
                .get(&c.name.to_lowercase())
                .unwrap_or_else(|| panic!("{}.{} missing from the row", table.name, c.name));
            assert!(!is_null(v), "{}.{} is NULL", table.name, c.name);
        }
        let id = self
            .0
            .get(&table.identity.to_lowercase())
            .and_then(as_int)
            .expect("identity");
        assert_eq!(
            self.int(table.recid_recno),
            id,
            "{}: RECid_RECno must equal RECno",
            table.name
        );
    }
}

fn as_int(v: &ColumnData<'static>) -> Option<i64> {
    match v {
        ColumnData::U8(Some(v)) => Some((*v).into()),
        ColumnData::I16(Some(v)) => Some((*v).into()),
        ColumnData::I32(Some(v)) => Some((*v).into()),
        ColumnData::I64(Some(v)) => Some(*v),
        _ => None,
    }
}

fn is_null(v: &ColumnData<'static>) -> bool {
    matches!(
        v,
        ColumnData::U8(None)
            | ColumnData::I16(None)
            | ColumnData::I32(None)
            | ColumnData::I64(None)
            | ColumnData::F32(None)
            | ColumnData::F64(None)
            | ColumnData::Bit(None)
            | ColumnData::String(None)
            | ColumnData::Guid(None)
            | ColumnData::Binary(None)
            | ColumnData::Numeric(None)
            | ColumnData::DateTime(None)
            | ColumnData::SmallDateTime(None)
            | ColumnData::DateTime2(None)
            | ColumnData::Date(None)
    )
}

/// A sale line for [`insert_sale`].
#[derive(Debug, Clone)]
pub struct L {
    pub stok: Uuid,
    pub miktar: i32,
    pub fiyat: &'static str,
    pub kdv: &'static str,
    pub notlar: Option<String>,
}

impl L {
    pub fn new(stok_n: u32, miktar: i32, fiyat: &'static str, kdv: &'static str) -> L {
        L {
            stok: stok(stok_n),
            miktar,
            fiyat,
            kdv,
            notlar: None,
        }
    }
}

/// A sale header for [`insert_sale`].
#[derive(Debug, Clone)]
pub struct S {
    pub cari: Option<Uuid>,
    pub tipi: &'static str,
    pub odeme: &'static str,
    pub banka: Option<Uuid>,
    pub kasa: Option<Uuid>,
    pub notlar: Option<String>,
    pub seri: Option<&'static str>,
    pub date: NaiveDate,
    pub belge_no: Option<String>,
    /// `satis_no`, the number the web shop shows.
    pub no: Option<String>,
}

impl S {
    pub fn open() -> S {
        S {
            cari: Some(cari(1)),
            tipi: "perakende",
            odeme: "vadeli",
            banka: None,
            kasa: None,
            notlar: None,
            seri: None,
            date: NaiveDate::from_ymd_opt(2025, 11, 12).unwrap(),
            belge_no: None,
            no: None,
        }
    }

    /// An open-account sale of the web customer `cari`.
    pub fn of(cari: Uuid) -> S {
        S {
            cari: Some(cari),
            ..S::open()
        }
    }
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// Inserts a sale and its lines in one transaction (as the web app does); amounts are computed
/// from the lines: ara_toplam = Σ qty×price, kdv = Σ qty×price×rate/100, total = ara + kdv.
pub async fn insert_sale(web: &tokio_postgres::Client, s: &S, lines: &[L]) -> Uuid {
    let id = Uuid::new_v4();
    let mut ara = Decimal::ZERO;
    let mut kdv = Decimal::ZERO;
    let mut rows = Vec::new();
    for l in lines {
        let net = Decimal::from(l.miktar) * d(l.fiyat);
        let v = (net * d(l.kdv) / Decimal::from(100))
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        ara += net;
        kdv += v;
        rows.push((net, v));
    }
    web.batch_execute("BEGIN").await.unwrap();
    web.execute(
        "INSERT INTO satislar (id, cari_hesap_id, satis_tarihi, satis_tipi, odeme_sekli, ara_toplam, \
         kdv_tutari, toplam_tutar, notlar, kasa_id, banka_id, fatura_seri_no, belge_no, satis_no) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        &[
            &id,
            &s.cari,
            &s.date,
            &s.tipi,
            &s.odeme,
            &ara,
            &kdv,
            &(ara + kdv),
            &s.notlar,
            &s.kasa,
            &s.banka,
            &s.seri,
            &s.belge_no,
            &s.no,
        ],
    )
    .await
    .expect("insert satislar");
    for (i, (l, (net, v))) in lines.iter().zip(rows).enumerate() {
        web.execute(
            "INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani, \
             kdv_tutari, toplam_tutar, sira_no, notlar) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &id,
                &l.stok,
                &l.miktar,
                &d(l.fiyat),
                &d(l.kdv),
                &v,
                &(net + v),
                &(i as i32),
                &l.notlar,
            ],
        )
        .await
        .expect("insert satis_kalemleri");
    }
    web.batch_execute("COMMIT").await.unwrap();
    id
}

/// A collection for [`insert_collection`].
#[derive(Debug, Clone)]
pub struct T {
    pub cari: Option<Uuid>,
    pub tipi: &'static str,
    pub tutar: &'static str,
    pub banka: Option<Uuid>,
    pub kasa: Option<Uuid>,
    pub cek_no: Option<String>,
    pub vade: Option<NaiveDate>,
    pub banka_adi: Option<String>,
    pub aciklama: Option<String>,
    pub date: NaiveDate,
    /// `tahsilat_no`, the number the web shop shows.
    pub no: Option<String>,
}

impl T {
    pub fn new(tipi: &'static str, tutar: &'static str) -> T {
        T {
            cari: Some(cari(1)),
            tipi,
            tutar,
            banka: None,
            kasa: None,
            cek_no: None,
            vade: None,
            banka_adi: None,
            aciklama: None,
            date: NaiveDate::from_ymd_opt(2025, 11, 12).unwrap(),
            no: None,
        }
    }
}

pub async fn insert_collection(web: &tokio_postgres::Client, t: &T) -> Uuid {
    let id = Uuid::new_v4();
    web.execute(
        "INSERT INTO tahsilatlar (id, cari_hesap_id, tahsilat_tarihi, tahsilat_tipi, tutar, banka_id, \
         kasa_id, cek_no, vade_tarihi, banka_adi, aciklama, tahsilat_no) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            &id,
            &t.cari,
            &t.date,
            &t.tipi,
            &d(t.tutar),
            &t.banka,
            &t.kasa,
            &t.cek_no,
            &t.vade,
            &t.banka_adi,
            &t.aciklama,
            &t.no,
        ],
    )
    .await
    .expect("insert tahsilatlar");
    id
}

/// Istanbul wall-clock now (UTC+3), for "dates are local" checks.
pub fn istanbul_now() -> NaiveDateTime {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Istanbul)
        .naive_local()
}
