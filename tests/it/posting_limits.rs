//! SQL Server refuses a request with more than 2,100 parameters (error 8003, which the emulator
//! raises too). The widest document the daemon sends is a long sale: every line binds the same
//! ~30 values (discounts, VAT, notes are always set), so the longest sale is the widest. This
//! posts one of 240 lines with Turkish notes and checks, at the emulator, that every RPC call
//! stayed at least [`MARGIN`] parameters below the limit while the split really filled its
//! calls (so a change that adds parameters per line or per call is caught here, not in a shop).
//!
//! The emulator's readers never wait for writers (PostgreSQL MVCC); on SQL Server a reader of the
//! rows an open posting wrote (the Mikro program reading CARI_HESAP_HAREKETLERI) waits until it
//! commits. `a_usual_posting_holds_no_transaction_across_round_trips` is the test that catches a
//! daemon keeping its transaction open across round trips: the usual documents begin and commit
//! inside one request, so such a reader waits at most one posting's server time.

use crate::posting_support;

use mikro_sync::posting::DocKind;
use posting_support::{insert_collection, insert_sale, Env, L, S, T};

/// SQL Server's limit on the parameters of one RPC call (sp_executesql's @stmt and @params
/// included).
const SQL_SERVER_LIMIT: usize = 2_100;
/// The posting budgets 2,000 statement parameters per call; sp_executesql adds two, so 98
/// remain. A change that eats into that headroom fails below.
const MARGIN: usize = 90;
const LINES: usize = 240;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_sale_stays_below_2100_parameters_per_call() {
    let mut env = Env::start().await;
    let lines: Vec<L> = (0..LINES)
        .map(|i| {
            let mut l = L::new((i % 11) as u32 + 1, 1 + (i % 7) as i32, "12.50", "20");
            l.notlar = Some(format!("satır {i}: İŞÇİ ğüşıöç şt İST — uzun açıklama"));
            l
        })
        .collect();
    let id = insert_sale(&env.web, &S::open(), &lines).await;
    let stats_before = env.h.erp_rpc_stats().map(|s| s.calls()).unwrap_or(0);
    let posted = env
        .post(DocKind::Satis, id)
        .await
        .expect("post the long sale");
    assert!(!posted.already_posted);
    let n = env
        .count(&format!(
            "SELECT COUNT(*) FROM STOK_HAREKETLERI WHERE sth_fat_recid_recno = {}",
            posted.cha_recno
        ))
        .await;
    assert_eq!(n, LINES as i64, "every line written");

    let Some(stats) = env.h.erp_rpc_stats() else {
        return; // a real SQL Server enforces the limit itself (the post above succeeded)
    };
    let calls = stats.calls() - stats_before;
    let widest = stats.max_params();
    println!(
        "{LINES}-line sale: {calls} RPC calls, widest {widest} parameters (limit {SQL_SERVER_LIMIT}, margin {})",
        SQL_SERVER_LIMIT - widest
    );
    assert!(
        widest + MARGIN <= SQL_SERVER_LIMIT,
        "a call carried {widest} parameters: less than {MARGIN} below SQL Server's {SQL_SERVER_LIMIT}"
    );
    // The split fills its calls (~60 lines each): the widest call is close to the budget, so
    // this test measures the real maximum rather than a small document.
    assert!(
        widest > 1_800,
        "widest call {widest} parameters: the sale did not fill a call"
    );
    assert!(calls >= 4, "{LINES} lines in {calls} calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usual_posting_holds_no_transaction_across_round_trips() {
    let mut env = Env::start().await;
    let lines = vec![
        L::new(1, 2, "10.00", "20"),
        L::new(2, 1, "5.50", "10"),
        L::new(3, 3, "1.25", "1"),
    ];
    let sale = insert_sale(&env.web, &S::open(), &lines).await;
    env.post(DocKind::Satis, sale).await.expect("post the sale");
    let mut cash = T::new("nakit", "50");
    cash.kasa = Some(posting_support::kasa(1));
    let receipt = insert_collection(&env.web, &cash).await;
    env.post(DocKind::Tahsilat, receipt)
        .await
        .expect("post the collection");
    let Some(stats) = env.h.erp_rpc_stats() else {
        return;
    };
    assert_eq!(
        stats.max_requests_per_transaction(),
        0,
        "a posting kept its ERP transaction open across round trips: on SQL Server the Mikro \
         program's readers of CARI_HESAP_HAREKETLERI would wait for the daemon's network"
    );

    // The one documented exception: a sale too long for one call opens its transaction first,
    // sends the lines in several calls and commits in the last one.
    let long: Vec<L> = (0..150)
        .map(|i| L::new((i % 11) as u32 + 1, 1, "3.00", "20"))
        .collect();
    let sale = insert_sale(&env.web, &S::open(), &long).await;
    let before = stats.calls();
    env.post(DocKind::Satis, sale)
        .await
        .expect("post the long sale");
    let calls = (stats.calls() - before) as usize;
    let spanned = stats.max_requests_per_transaction();
    println!("150-line sale: {calls} RPC calls, transaction open across {spanned} requests");
    assert!(
        spanned >= 2 && spanned <= calls + 2,
        "150-line sale: transaction across {spanned} requests for {calls} calls"
    );
}
