//! `mikro-sync setup`, `setup --erp` and `doctor` as an operator runs them, against a real
//! PostgreSQL and the Mikro emulator (or a real SQL Server with MIKRO_TEST_MSSQL).

use mikro_emulator::harness::{Harness, HarnessOptions};

#[derive(Clone)]
struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    fn new(h: &Harness) -> Env {
        Env {
            vars: vec![
                ("MIKRO_SYNC_PG_URL".into(), h.web_url()),
                ("MSSQL_SERVER".into(), h.host().into()),
                ("MSSQL_PORT".into(), h.port().to_string()),
                ("MSSQL_DATABASE".into(), h.database().into()),
                ("MSSQL_USER".into(), h.user().into()),
                ("MSSQL_PASSWORD".into(), h.password().into()),
                ("MSSQL_ENCRYPT".into(), "true".into()),
                ("MSSQL_TRUST_SERVER_CERTIFICATE".into(), "true".into()),
            ],
        }
    }

    fn set(mut self, k: &str, v: &str) -> Env {
        self.vars.retain(|(a, _)| a != k);
        self.vars.push((k.into(), v.into()));
        self
    }

    async fn run(&self, args: &[&str]) -> (i32, String) {
        let dir = tempfile::tempdir().unwrap();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mikro-sync"))
            .args(args)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .await
            .expect("run mikro-sync");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn setup_and_doctor() {
    let h = Harness::start(HarnessOptions::default())
        .await
        .expect("harness");
    let env = Env::new(&h);

    // Nothing installed yet: doctor fails and says what to run.
    let (code, text) = env.run(&["doctor"]).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("[ ok ] web database: connected"), "{text}");
    assert!(text.contains("[ ok ] Mikro database: connected"), "{text}");
    assert!(text.contains("[FAIL] queue: no sync_queue table"), "{text}");
    assert!(text.contains("run `mikro-sync setup`"), "{text}");
    assert!(text.contains("[FAIL] ledger"), "{text}");
    assert!(text.contains("mikro-sync setup --erp"), "{text}");
    assert!(
        text.contains("[warn] Mikro TLS"),
        "trusting any certificate is flagged: {text}"
    );
    assert!(
        !text.contains(h.password()),
        "the password must never be printed"
    );

    // setup, twice: the second run changes nothing.
    let (code, text) = env.run(&["setup"]).await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("trigger satis_sync_trigger on satislar"),
        "{text}"
    );
    assert!(
        text.contains("trigger tahsilat_sync_trigger on tahsilatlar"),
        "{text}"
    );
    let (code, text) = env.run(&["setup"]).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("nothing to do"), "{text}");
    let (code, text) = env.run(&["setup", "--erp"]).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("created"), "{text}");
    let (code, text) = env.run(&["setup", "--erp"]).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("already present"), "{text}");

    // A sale for a customer whose code Mikro does not know.
    let web = h.web_client().await.unwrap();
    web.batch_execute(
        "INSERT INTO cari_hesaplar (id, cari_kodu, cari_adi)
              VALUES ('d0000000-0000-4000-8000-0000000000aa', 'WEB-ONLY-1', 'Yeni Müşteri');
         WITH s AS (
             INSERT INTO satislar (satis_no, cari_hesap_id, odeme_sekli, toplam_tutar)
             VALUES ('DOC-1', 'd0000000-0000-4000-8000-0000000000aa', 'acik_hesap', 12)
             RETURNING id)
         INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani, kdv_tutari, toplam_tutar)
         SELECT s.id, (SELECT id FROM stoklar ORDER BY stok_kodu LIMIT 1), 1, 10, 20, 2, 12 FROM s;",
    )
    .await
    .unwrap();
    let (code, text) = env.run(&["doctor"]).await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("[ ok ] trigger: satis_sync_trigger on satislar"),
        "{text}"
    );
    assert!(text.contains("[ ok ] ledger"), "{text}");
    assert!(text.contains("[FAIL] mappings"), "{text}");
    assert!(
        text.contains("'WEB-ONLY-1' does not exist in Mikro CARI_HESAPLAR"),
        "{text}"
    );
    assert!(
        text.contains(
            "INSERT INTO int_kodmap_cari (web_cari_id, erp_cari_kod) VALUES ('d0000000-0000-4000-8000-0000000000aa'"
        ),
        "{text}"
    );
    assert!(
        text.contains("[warn] queue"),
        "pending with no listener is flagged: {text}"
    );

    // The fix doctor proposed: map the web customer to an existing Mikro customer.
    web.batch_execute(
        "INSERT INTO int_kodmap_cari (web_cari_id, erp_cari_kod)
         VALUES ('d0000000-0000-4000-8000-0000000000aa', '120.01.001')",
    )
    .await
    .unwrap();
    let (code, text) = env.run(&["doctor"]).await;
    eprintln!("{text}");
    assert!(text.contains("[ ok ] mappings"), "{text}");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("All checks passed"), "{text}");

    // sync (ERP → web) and sync-bidirectional (then the pending sale is posted) via the binary.
    let (code, text) = env.run(&["sync", "--entity", "stok"]).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("stok") && text.contains("total"), "{text}");
    let (code, text) = env.run(&["sync-bidirectional"]).await;
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("cari") && text.contains("barkod"),
        "all entities: {text}"
    );
    assert!(
        text.contains("web → ERP: 1 claimed, 1 posted, 0 failed"),
        "{text}"
    );
    let (fs, fn_): (Option<String>, Option<i32>) = {
        let r = web
            .query_one(
                "SELECT fatura_seri_no, fatura_sira_no FROM satislar WHERE satis_no = 'DOC-1'",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(
        fs.is_some() && fn_.is_some(),
        "the Mikro number is written back"
    );

    // Rights granted by hand after setup: a role that may insert sales but not into the
    // queue's inbox would have its sales rejected; doctor names it and the GRANT.
    web.batch_execute("CREATE ROLE late_writer; GRANT INSERT ON satislar TO late_writer;")
        .await
        .unwrap();
    let (code, text) = env.run(&["doctor"]).await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("[FAIL] queue rights: role(s) late_writer may insert sales"),
        "{text}"
    );
    assert!(
        text.contains("GRANT INSERT ON sync_queue_inbox TO late_writer;"),
        "{text}"
    );
    web.batch_execute("GRANT INSERT ON sync_queue_inbox TO late_writer")
        .await
        .unwrap();
    let (code, text) = env.run(&["doctor"]).await;
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("[ ok ] queue rights"), "{text}");
    // A daemon login that may read everything and write sync_queue, but was never given
    // DELETE on the inbox, would claim nothing new: doctor names this login in the GRANT.
    web.batch_execute(
        "CREATE ROLE thin_daemon LOGIN; \
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO thin_daemon; \
         GRANT INSERT, UPDATE ON sync_queue TO thin_daemon;",
    )
    .await
    .unwrap();
    let thin = env.set(
        "MIKRO_SYNC_PG_URL",
        &h.web_url().replace("postgres@", "thin_daemon@"),
    );
    let (_, text) = thin.run(&["doctor"]).await;
    assert!(
        text.contains(
            "[FAIL] queue rights: this login (thin_daemon) cannot move the queue's inbox"
        ),
        "{text}"
    );
    assert!(
        text.contains("GRANT SELECT, DELETE ON sync_queue_inbox TO thin_daemon;"),
        "{text}"
    );
    web.batch_execute("GRANT DELETE ON sync_queue_inbox TO thin_daemon")
        .await
        .unwrap();
    let (_, text) = thin.run(&["doctor"]).await;
    assert!(text.contains("[ ok ] queue rights"), "{text}");
    let env = thin.set("MIKRO_SYNC_PG_URL", &h.web_url());

    // --quick: silent on success; a wrong password fails and names the database.
    let (code, text) = env.run(&["doctor", "--quick"]).await;
    assert_eq!((code, text.trim()), (0, ""));
    let (code, text) = env
        .set("MSSQL_PASSWORD", "wrong-password")
        .run(&["doctor", "--quick"])
        .await;
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("[FAIL] Mikro database: cannot connect"),
        "{text}"
    );
    assert!(!text.contains("wrong-password"), "{text}");
}

/// SQL Server 1 min behind the company clock (PostgreSQL, behind the emulator, takes whole minutes) with the default 5 min overlap: fine. 10 min behind:
/// doctor warns that the skew approaches (here exceeds) the overlap and says what to raise.
#[tokio::test(flavor = "multi_thread")]
async fn doctor_warns_when_erp_clock_skew_approaches_the_overlap() {
    // POSIX zone strings (sign inverted): Istanbul is UTC+3 all year.
    for (zone, warns) in [("MKR-02:59", false), ("MKR-02:50", true)] {
        let h = Harness::start(HarnessOptions {
            erp_timezone: Some(zone.into()),
            ..HarnessOptions::default()
        })
        .await
        .expect("harness");
        let env = Env::new(&h);
        let (code, text) = env.run(&["setup"]).await;
        assert_eq!(code, 0, "{text}");
        let (code, text) = env.run(&["setup", "--erp"]).await;
        assert_eq!(code, 0, "{text}");
        let (_, text) = env.run(&["doctor"]).await;
        if warns {
            assert!(text.contains("[warn] ERP clock skew"), "{text}");
            assert!(text.contains("MIKRO_SYNC_ERP_SYNC_OVERLAP"), "{text}");
            // Doing what it says: an overlap of at least twice the skew silences it.
            let (_, text) = env
                .clone()
                .set("MIKRO_SYNC_ERP_SYNC_OVERLAP", "25m")
                .run(&["doctor"])
                .await;
            assert!(text.contains("[ ok ] ERP clock skew"), "{text}");
        } else {
            assert!(text.contains("[ ok ] ERP clock skew"), "{text}");
        }
    }
}
