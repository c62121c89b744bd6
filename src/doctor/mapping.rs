//! Every open document's customer and products resolve to a Mikro code.

use super::*;
use crate::db::ErpClient;

pub(super) async fn mapping_checks(
    client: &tokio_postgres::Client,
    erp: Option<&mut ErpClient>,
    default_cari: Option<&str>,
    out: &mut Vec<Check>,
) {
    // The code each open document will be posted with: the mapping table first, then the
    // configured default account for customers made on the web, then the web master row's own
    // code (the same order posting uses).
    let sql = "
        WITH open AS (
            SELECT entity_type, entity_id FROM sync_queue
             WHERE status IN ('pending', 'processing', 'failed')
             ORDER BY created_at LIMIT 500)
        SELECT 'cari' AS what, o.entity_type, o.entity_id::text, s.cari_hesap_id::text,
               coalesce(m.erp_cari_kod,
                        CASE WHEN c.id IS NOT NULL AND c.kaynak IS DISTINCT FROM 'erp' THEN $1::text END,
                        nullif(c.cari_kodu, ''))
          FROM open o JOIN satislar s ON o.entity_type = 'satis' AND s.id = o.entity_id
          LEFT JOIN int_kodmap_cari m ON m.web_cari_id = s.cari_hesap_id
          LEFT JOIN cari_hesaplar c ON c.id = s.cari_hesap_id
        UNION ALL
        SELECT 'cari', o.entity_type, o.entity_id::text, t.cari_hesap_id::text,
               coalesce(m.erp_cari_kod,
                        CASE WHEN c.id IS NOT NULL AND c.kaynak IS DISTINCT FROM 'erp' THEN $1::text END,
                        nullif(c.cari_kodu, ''))
          FROM open o JOIN tahsilatlar t ON o.entity_type = 'tahsilat' AND t.id = o.entity_id
          LEFT JOIN int_kodmap_cari m ON m.web_cari_id = t.cari_hesap_id
          LEFT JOIN cari_hesaplar c ON c.id = t.cari_hesap_id
        UNION ALL
        SELECT 'stok', o.entity_type, o.entity_id::text, k.stok_id::text,
               coalesce(ms.erp_stok_kod, nullif(st.stok_kodu, ''))
          FROM open o JOIN satis_kalemleri k ON o.entity_type = 'satis' AND k.satis_id = o.entity_id
          LEFT JOIN int_kodmap_stok ms ON ms.web_stok_id = k.stok_id
          LEFT JOIN stoklar st ON st.id = k.stok_id";
    let rows = match client.query(sql, &[&default_cari]).await {
        Ok(r) => r,
        Err(e) => {
            out.push(Check::warn(
                "mappings",
                format!("could not check ({})", pg_error_text(&e)),
                "the web tables differ from the reference schema; check mappings by hand",
            ));
            return;
        }
    };
    type Ref = (String, String, String, Option<String>, Option<String>);
    let refs: Vec<Ref> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    // Which resolved codes exist in Mikro (one short query per distinct code).
    let mut unknown: std::collections::BTreeSet<(String, String)> = Default::default();
    let mut checked_in_mikro = false;
    if let Some(erp) = erp {
        checked_in_mikro = true;
        let mut codes: Vec<(String, String)> = refs
            .iter()
            .filter_map(|(w, _, _, _, c)| c.clone().map(|c| (w.clone(), c)))
            .collect();
        codes.sort();
        codes.dedup();
        for (what, code) in codes.into_iter().take(200) {
            let sql = if what == "cari" {
                "SELECT COUNT(*) FROM CARI_HESAPLAR WHERE cari_kod = @P1"
            } else {
                "SELECT COUNT(*) FROM STOKLAR WHERE sto_kod = @P1"
            };
            let n = match erp.query(sql, &[&code.as_str()]).await {
                Ok(st) => st
                    .into_row()
                    .await
                    .ok()
                    .flatten()
                    .and_then(|r| r.try_get::<i32, _>(0).ok().flatten()),
                Err(_) => None,
            };
            if n == Some(0) {
                unknown.insert((what, code));
            }
        }
    }
    let mut problems = Vec::new();
    for (what, kind, doc, master, code) in &refs {
        let master = master.clone().unwrap_or_else(|| "NULL".into());
        let (tbl, col_id, col_code, mikro) = if what == "cari" {
            (
                "int_kodmap_cari",
                "web_cari_id",
                "erp_cari_kod",
                "CARI_HESAPLAR",
            )
        } else {
            ("int_kodmap_stok", "web_stok_id", "erp_stok_kod", "STOKLAR")
        };
        let add = format!(
            "INSERT INTO {tbl} ({col_id}, {col_code}) VALUES ('{master}', '<Mikro code>');"
        );
        match code {
            None => problems.push(format!("{kind} {doc}: {what} {master} has no Mikro code: {add}")),
            Some(c) if unknown.contains(&(what.clone(), c.clone())) => problems.push(format!(
                "{kind} {doc}: {what} code '{c}' does not exist in Mikro {mikro}: create it in Mikro, or map the web row: {add}"
            )),
            _ => {}
        }
    }
    problems.sort();
    problems.dedup();
    if problems.is_empty() {
        out.push(Check::ok(
            "mappings",
            format!(
                "every open document's customer and products resolve to a Mikro code{}",
                if checked_in_mikro {
                    " that exists in Mikro"
                } else {
                    ""
                }
            ),
        ));
        return;
    }
    let n = problems.len();
    let mut fix: Vec<String> = problems.into_iter().take(10).collect();
    if n > 10 {
        fix.push(format!("… and {} more", n - 10));
    }
    fix.push("then `mikro-sync retry-failed` for the documents that already failed".into());
    out.push(Check::fail(
        "mappings",
        format!(
            "{n} reference(s) from open documents do not resolve to a Mikro customer or product"
        ),
        fix.join("\n"),
    ));
}
