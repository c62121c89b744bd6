//! SQL Server refuses a request with more than 2,100 parameters (error 8003, which the emulator
//! raises too). The widest document the daemon sends is a long sale: every line binds the same
//! ~30 values (discounts, VAT, notes are always set), so the longest sale is the widest. This
//! posts one of 240 lines with Turkish notes and checks, at the emulator, that every RPC call
//! stayed at least [`MARGIN`] parameters below the limit while the split really filled its
//! calls (so a change that adds parameters per line or per call is caught here, not in a shop).

mod posting_support;

use mikro_sync::posting::DocKind;
use posting_support::{insert_sale, Env, L, S};

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
