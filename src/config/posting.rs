//! How documents are written into Mikro: the settings posting reads.

/// Settings that decide how documents are written (from configuration).
#[derive(Debug, Clone)]
pub struct PostingConfig {
    /// The company's time zone: every Mikro datetime is local wall-clock time in it.
    pub tz: chrono_tz::Tz,
    /// Series for sales when the web row has none.
    pub sale_series: String,
    /// Series for collections when the web row has none.
    pub collection_series: String,
    /// Mikro bank code for documents that need a bank but name none (`banka_id` empty).
    pub default_bank_code: Option<String>,
    /// Mikro cash-box code for documents that need a cash box but name none (`kasa_id` empty).
    pub default_kasa_code: Option<String>,
    /// Mikro account for customers the web made (`kaynak` not `'erp'`) that have no
    /// `int_kodmap_cari` row (`MIKRO_SYNC_DEFAULT_CARI`; `None` = their own code is used).
    pub default_cari_code: Option<String>,
    /// Cheque portfolio box (`KASALAR.kas_kod`) that received customer cheques go to; `ÇEK` in
    /// the traces.
    pub cek_box_code: String,
    /// Note portfolio box for received customer notes; `SENET` in the traces.
    pub senet_box_code: String,
    /// Depot number for `sth_giris_depo_no` / `sth_cikis_depo_no` (1 in the traces).
    pub depot_no: i32,
    /// How long a posting waits for the per-series numbering lock before it gives up (transient).
    pub lock_timeout_ms: i32,
    /// Document dates before this are refused (`MIKRO_SYNC_EARLIEST_DATE`).
    pub earliest_date: chrono::NaiveDate,
    /// Document dates more than this many days after today (company zone) are refused
    /// (`MIKRO_SYNC_MAX_DAYS_AHEAD`).
    pub max_days_ahead: i64,
    /// Post sale lines whose product is passive in Mikro (`MIKRO_SYNC_ALLOW_PASSIVE_PRODUCTS`;
    /// false: they are refused).
    pub allow_passive_products: bool,
    /// Benchmarks only (`PIPELINE_BENCH_BALANCE_AB`): post sales without the balance check, to
    /// measure what it costs. No setting sets it.
    #[doc(hidden)]
    pub skip_balance_check: bool,
}
