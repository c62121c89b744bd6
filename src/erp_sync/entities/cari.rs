//! CARI_HESAPLAR → `cari_hesaplar` (+ `int_kodmap_cari`), keyed by `cari_kod` = `cari_kodu`.
//!
//! Mapping: `cari_adi` = `cari_unvan1` + " " + `cari_unvan2` (trimmed); `telefon` =
//! `cari_CepTel`; `eposta` = `cari_EMail`; `vergi_dairesi` = `cari_vdaire_adi`; `vergi_no` =
//! `cari_vdaire_no`; empty Mikro text (N'') becomes NULL. `kaynak = 'erp'` when the column
//! exists. The address lives in CARI_HESAP_ADRESLERI, which is not synced: `adres` is left as
//! the web has it. The reference `cari_hesaplar` has no `aktif`, so under the deactivate policy
//! a customer deleted in Mikro is only reported (`missing`).

use deadpool_postgres::Transaction;

use crate::erp_sync::types::{
    col, Applied, DeletePolicy, Entity, Kind, Mapped, Reconciled, Spec, Val, WebSchema,
};

use crate::erp_sync::upsert::reconcile_mapped;

/// Mikro side of the customer sync.
pub static SPEC: Spec = Spec {
    entity: Entity::CARI,
    table: "CARI_HESAPLAR",
    recno: "cari_RECno",
    lastup: "cari_lastup_date",
    columns: &[
        col("cari_kod", Kind::Str),
        col("cari_unvan1", Kind::Str),
        col("cari_unvan2", Kind::Str),
        col("cari_CepTel", Kind::Str),
        col("cari_EMail", Kind::Str),
        col("cari_vdaire_adi", Kind::Str),
        col("cari_vdaire_no", Kind::Str),
    ],
    key_columns: &[col("cari_kod", Kind::Str)],
    key: |v| v[0].s().to_string(),
    web_tables: &["cari_hesaplar", "int_kodmap_cari"],
};

pub(crate) const MAPPED: Mapped = Mapped {
    web_table: "cari_hesaplar",
    web_code: "cari_kodu",
    map_table: "int_kodmap_cari",
    map_web: "web_cari_id",
    map_erp: "erp_cari_kod",
};

pub(crate) async fn apply(
    tx: &Transaction<'_>,
    ws: &WebSchema,
    rows: &[&[Val]],
) -> Result<Applied, tokio_postgres::Error> {
    let mut applied = Applied::default();
    let (mut kod, mut adi, mut tel, mut mail, mut vd, mut vn) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (i, r) in rows.iter().enumerate() {
        let v = *r;
        if v[0].s().trim().is_empty() {
            applied.rejects.push((i, "empty cari_kod".into()));
            continue;
        }
        let name = format!("{} {}", v[1].s().trim(), v[2].s().trim())
            .trim()
            .to_string();
        kod.push(v[0].s().to_string());
        adi.push(if name.is_empty() {
            v[0].s().to_string()
        } else {
            name
        });
        tel.push(super::opt(v[3].s()));
        mail.push(super::opt(v[4].s()));
        vd.push(super::opt(v[5].s()));
        vn.push(super::opt(v[6].s()));
    }
    if kod.is_empty() {
        return Ok(applied);
    }
    let t = "cari_hesaplar";
    let kaynak = ws.has(t, "kaynak");
    let set_extra = format!(
        "{}{}",
        if kaynak { ", kaynak = 'erp'" } else { "" },
        if ws.has(t, "guncelleme_tarihi") {
            ", guncelleme_tarihi = now()"
        } else {
            ""
        }
    );
    let sql = format!(
        "WITH src AS (
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                AS s(kod, adi, tel, mail, vd, vn)),
         upd AS (
            UPDATE cari_hesaplar w SET cari_adi = s.adi, telefon = s.tel, eposta = s.mail,
                   vergi_dairesi = s.vd, vergi_no = s.vn{set_extra}
            FROM src s WHERE w.cari_kodu = s.kod
              AND (w.cari_adi, w.telefon, w.eposta, w.vergi_dairesi, w.vergi_no{kw})
                  IS DISTINCT FROM (s.adi, s.tel, s.mail, s.vd, s.vn{ks})
            RETURNING w.id),
         ins AS (
            INSERT INTO cari_hesaplar (cari_kodu, cari_adi, telefon, eposta, vergi_dairesi, vergi_no{kc})
            SELECT s.kod, s.adi, s.tel, s.mail, s.vd, s.vn{kv} FROM src s
            WHERE NOT EXISTS (SELECT 1 FROM cari_hesaplar w WHERE w.cari_kodu = s.kod)
            RETURNING id, cari_kodu),
         {map}
         SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM upd)",
        kw = if kaynak { ", w.kaynak::text" } else { "" },
        ks = if kaynak { ", 'erp'::text" } else { "" },
        kc = if kaynak { ", kaynak" } else { "" },
        kv = if kaynak { ", 'erp'" } else { "" },
        map = MAPPED.map_cte("ins"),
    );
    let stmt = tx.prepare_cached(&sql).await?;
    let row = tx
        .query_one(&stmt, &[&kod, &adi, &tel, &mail, &vd, &vn])
        .await?;
    applied.inserted = row.get::<_, i64>(0) as u64;
    applied.updated = row.get::<_, i64>(1) as u64;
    Ok(applied)
}

pub(crate) async fn reconcile(
    tx: &Transaction<'_>,
    ws: &WebSchema,
    keys: &[Vec<Val>],
    policy: DeletePolicy,
) -> Result<Reconciled, tokio_postgres::Error> {
    reconcile_mapped(tx, ws, &MAPPED, &super::text_keys(keys), policy).await
}

erp_entity!(
    Cari,
    CARI,
    "cari",
    ["cariler", "cari_hesaplar", "customers"],
    "CARI_HESAPLAR → `cari_hesaplar` (+ `int_kodmap_cari`).", mapped: MAPPED
);
