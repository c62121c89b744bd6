//! The ERP pool hands out clean sessions: a transaction left open by an interrupted borrower is
//! rolled back by the check-out test, so it can never be committed together with the next
//! posting (which sends BEGIN TRAN … COMMIT TRAN in the same round trip as its rows).

use crate::common;

use common::*;

#[tokio::test]
async fn checkout_rolls_back_a_transaction_left_open() {
    let env = full_env().await;
    let pool = mikro_sync::db::erp_pool(&env.h.erp_ado(), 1)
        .await
        .expect("ERP pool");
    {
        let mut conn = pool.get().await.expect("first checkout");
        // An interrupted borrower: transaction open, a row changed, XACT_ABORT on.
        conn.simple_query(
            "SET XACT_ABORT ON; BEGIN TRAN; \
             UPDATE dbo.BANKALAR SET ban_ismi = N'LEFTOVER' WHERE ban_kod = N'01'",
        )
        .await
        .expect("leftover batch")
        .into_results()
        .await
        .expect("leftover results");
    }
    // One connection in the pool: this is the same session.
    let mut conn = pool.get().await.expect("second checkout");
    let row = conn
        .simple_query("SELECT @@TRANCOUNT AS n")
        .await
        .expect("trancount")
        .into_row()
        .await
        .expect("row")
        .expect("one row");
    let n: i32 = row.get(0).expect("int");
    assert_eq!(
        n, 0,
        "the check-out test must roll back the open transaction"
    );
    drop(conn);
    let left = erp_count(
        &env,
        "SELECT COUNT(*) FROM dbo.BANKALAR WHERE ban_ismi = N'LEFTOVER'",
        &[],
    )
    .await;
    assert_eq!(
        left, 0,
        "the leftover change was rolled back, not committed"
    );

    // And a posting through the same pool still works and commits.
    let c = connect(&env.url).await;
    let sale = insert_sale(&c, 2).await;
    let mut erp = pool.get().await.expect("third checkout");
    let cfg = mikro_sync::posting::PostingConfig::default();
    let p = mikro_sync::posting::post_document(
        &c,
        &mut erp,
        &cfg,
        mikro_sync::posting::DocKind::Satis,
        sale,
    )
    .await
    .expect("post");
    assert!(!p.already_posted);
    drop(erp);
    let n = erp_count(
        &env,
        "SELECT COUNT(*) FROM dbo.CARI_HESAP_HAREKETLERI WHERE cha_RECno = @P1",
        &[&p.cha_recno],
    )
    .await;
    assert_eq!(n, 1, "the posting committed");
}
