//! One canonical series per number range: spellings that Mikro's Turkish_CI_AS collation treats
//! as one series (`ST`/`st`/`St`, `şt`/`ŞT`, `İs`/`is`/`İS`) take one numbering lock and are
//! written in one spelling, so four workers posting them at once never issue a number twice.

use crate::common;
use crate::posting_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{fast_opts, full_env, mikro_sink, spawn_worker, wait_drained};
use posting_support::{insert_sale, L, S};

/// The web spellings, each with the series it must be written as (configured sale series `ST`).
const SPELLINGS: [(Option<&str>, &str); 10] = [
    (None, "ST"),
    (Some("ST"), "ST"),
    (Some("st"), "ST"),
    (Some("St"), "ST"),
    (Some("şt"), "ŞT"),
    (Some("ŞT"), "ŞT"),
    (Some("İs"), "İS"),
    (Some("is"), "İS"),
    // Dotless: a different series from `İS` under the Turkish collation.
    (Some("ıs"), "IS"),
    (Some("IS"), "IS"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_spellings_across_four_workers_get_unique_gap_free_numbers() {
    let env = full_env().await;
    let web = common::connect(&env.url).await;
    const PER_SPELLING: usize = 16;
    let mut expected: BTreeMap<uuid::Uuid, &str> = BTreeMap::new();
    // Interleaved, so every worker sees every spelling at the same time.
    for _ in 0..PER_SPELLING {
        for (web_seri, canonical) in SPELLINGS {
            let id = insert_sale(
                &web,
                &S {
                    seri: web_seri,
                    ..S::open()
                },
                &[L::new(1, 1, "10", "20")],
            )
            .await;
            expected.insert(id, canonical);
        }
    }
    let mut workers = Vec::new();
    for _ in 0..4 {
        let sink = mikro_sink(&env, 2).await;
        workers.push(spawn_worker(&env.pool, &env.url, sink, fast_opts()));
    }
    wait_drained(&web, Duration::from_secs(180)).await;
    for w in workers {
        w.stop().await;
    }
    let failed: Vec<(String, Option<String>)> = web
        .query(
            "SELECT entity_id::text, error_message FROM sync_queue WHERE status <> 'completed'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(failed.is_empty(), "not completed: {failed:?}");

    // Mikro: each series in exactly one spelling, numbers 1..=n without gaps or repeats.
    let mut erp = env.h.erp_client().await.unwrap();
    let rows = erp
        .simple_query(
            "SELECT cha_evrakno_seri, cha_evrakno_sira FROM dbo.CARI_HESAP_HAREKETLERI \
             WHERE cha_evrak_tip = 63",
        )
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap();
    // Numbers first, grouped as Mikro groups series (Turkish upper case), then the spellings.
    let mut by_range: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    let mut spellings: BTreeSet<String> = BTreeSet::new();
    for r in &rows {
        let seri: &str = r.get(0).unwrap();
        let sira: i32 = r.get(1).unwrap();
        by_range
            .entry(mikro_sync::posting::text::turkish_upper(seri))
            .or_default()
            .push(sira);
        spellings.insert(seri.to_string());
    }
    let mut want: BTreeMap<String, usize> = BTreeMap::new();
    for c in expected.values() {
        *want.entry(c.to_string()).or_default() += 1;
    }
    for (seri, n) in &want {
        let mut nums = by_range.remove(seri).unwrap_or_default();
        nums.sort_unstable();
        assert_eq!(
            nums,
            (1..=*n as i32).collect::<Vec<_>>(),
            "series {seri}: numbers must be 1..={n}, each once"
        );
    }
    assert!(by_range.is_empty(), "unexpected series {by_range:?}");
    assert_eq!(
        spellings,
        want.keys().cloned().collect::<BTreeSet<_>>(),
        "spellings written to cha_evrakno_seri"
    );
    let sth_spellings: BTreeSet<String> = erp
        .simple_query("SELECT DISTINCT sth_evrakno_seri FROM dbo.STOK_HAREKETLERI")
        .await
        .unwrap()
        .into_first_result()
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<&str, _>(0).unwrap().to_string())
        .collect();
    assert_eq!(
        sth_spellings,
        want.keys().cloned().collect::<BTreeSet<_>>(),
        "sth_evrakno_seri uses the same spellings"
    );

    // Web: every sale carries its canonical series and a number unique within it.
    let mut seen = BTreeSet::new();
    for (id, canonical) in &expected {
        let r = web
            .query_one(
                "SELECT fatura_seri_no, fatura_sira_no FROM satislar WHERE id = $1",
                &[id],
            )
            .await
            .unwrap();
        let (seri, sira): (Option<String>, Option<i32>) = (r.get(0), r.get(1));
        assert_eq!(seri.as_deref(), Some(*canonical), "sale {id}");
        assert!(
            seen.insert((seri, sira)),
            "sale {id}: number written back twice"
        );
    }
}
