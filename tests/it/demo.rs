//! `mikro-sync demo` runs to the end and every document it inserts is posted into Mikro.

use mikro_sync::demo::{run, DemoOptions};

#[tokio::test(flavor = "multi_thread")]
async fn demo_posts_every_document() {
    let report = run(DemoOptions {
        print: false,
        ..DemoOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("demo failed: {e}"));
    assert_eq!(report.docs.len(), 13, "8 sales and 5 collections");
    assert!(
        report.imported_rows > 0,
        "master data was imported ERP → web"
    );
    for d in &report.docs {
        assert_eq!(d.status, "completed", "{d:?}");
        let (seri, sira) = d
            .mikro_no
            .clone()
            .unwrap_or_else(|| panic!("no Mikro number written back: {d:?}"));
        assert!(!seri.is_empty() && sira > 0, "{d:?}");
        assert!(
            d.cha_recno.unwrap_or(0) > 0,
            "ledger has the CHA RECno: {d:?}"
        );
        if d.kind == "satis" {
            assert!(d.lines.unwrap_or(0) >= 1, "a sale has STH lines: {d:?}");
        }
        assert!(d.latency.is_some(), "{d:?}");
    }
    // All five collection kinds, returns and the three payment kinds were exercised.
    for v in [
        "nakit",
        "cek",
        "senet",
        "havale",
        "kredi_karti",
        "iade",
        "open account",
        "card",
        "cash",
    ] {
        assert!(
            report.docs.iter().any(|d| d.variant.contains(v)),
            "no {v} document"
        );
    }
    // Numbers are unique per series.
    let mut nos: Vec<_> = report
        .docs
        .iter()
        .filter_map(|d| d.mikro_no.clone().map(|n| (d.kind, n)))
        .collect();
    let before = nos.len();
    nos.sort();
    nos.dedup();
    assert_eq!(nos.len(), before, "duplicate Mikro numbers");
    let text = mikro_sync::demo::render(&report);
    assert!(text.contains("13 of 13 documents posted"), "{text}");
}
