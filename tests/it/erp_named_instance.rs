//! Named SQL Server instances (`host\INSTANCE`, ADO `Data Source=host\INSTANCE`) are resolved
//! through SQL Server Browser over the wire (the emulator's SSRP responder on a test port); an
//! explicit port wins and the browser is not asked; a browser that does not answer stops the
//! worker at start with exit code 2 and the fix, within a bounded wait.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use mikro_emulator::browser::BrowserResponder;
use mikro_sync::config::Config;

fn cfg(pairs: &[(&str, String)]) -> Config {
    let m: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Config::from_map(&m).expect("valid config")
}

fn mssql(env: &FullEnv, server: String, browser_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("MSSQL_SERVER", server),
        ("MSSQL_DATABASE", env.h.database().to_string()),
        ("MSSQL_USER", env.h.user().to_string()),
        ("MSSQL_PASSWORD", env.h.password().to_string()),
        ("MSSQL_ENCRYPT", "plaintext".into()),
        ("MIKRO_SYNC_MSSQL_BROWSER_PORT", browser_port.to_string()),
    ]
}

/// Posts one sale through `pool` and checks it landed once.
async fn post_one(env: &FullEnv, pool: &mikro_sync::db::ErpPool) {
    let c = connect(&env.url).await;
    let sale = insert_sale(&c, 1).await;
    let mut erp = pool
        .get()
        .await
        .expect("a connection to the named instance");
    mikro_sync::posting::post_document(
        &c,
        &mut erp,
        &mikro_sync::posting::PostingConfig::default(),
        mikro_sync::posting::DocKind::Satis,
        sale,
    )
    .await
    .expect("posted");
    drop(erp);
    let p = erp_postings(env, &[sale]).await;
    assert_eq!((p[0].1, p[0].2), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_instance_is_resolved_through_the_browser() {
    let env = full_env().await;
    // The instance name is Turkish and written in another case than the browser knows it.
    let browser = BrowserResponder::start(vec![
        ("SQLEXPRESS".into(), 1),
        ("MİKRO".into(), env.h.port()),
    ])
    .await
    .unwrap();
    let c = cfg(&mssql(&env, "127.0.0.1\\MİKRO".into(), browser.port()));
    let pool = mikro_sync::db::erp_pool_from_config(c.erp().unwrap())
        .await
        .expect("pool for a named instance");
    post_one(&env, &pool).await;
    assert!(browser.requests() >= 2, "asked at start and on connect");

    // The ADO form names it the same way (tiberius' ADO parser takes ASCII server names only;
    // SQL Server compares instance names case-insensitively).
    let browser = BrowserResponder::start(vec![("MIKRO".into(), env.h.port())])
        .await
        .unwrap();
    let ado = format!(
        "Data Source=127.0.0.1\\mikro;Initial Catalog={};User ID={};Password={};Encrypt=DANGER_PLAINTEXT",
        env.h.database(),
        env.h.user(),
        env.h.password()
    );
    let c = cfg(&[
        ("MIKRO_SYNC_MSSQL_ADO", ado),
        ("MIKRO_SYNC_MSSQL_BROWSER_PORT", browser.port().to_string()),
    ]);
    let erp = c.erp().unwrap();
    assert_eq!(erp.instance.as_deref(), Some("mikro"));
    let pool = mikro_sync::db::erp_pool_from_config(erp)
        .await
        .expect("pool from the ADO string");
    post_one(&env, &pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_port_wins_over_the_browser() {
    let env = full_env().await;
    // The browser would send us to a wrong port: it must not be asked.
    let browser = BrowserResponder::start(vec![("MIKRO".into(), 1)])
        .await
        .unwrap();
    let c = cfg(&mssql(
        &env,
        format!("127.0.0.1\\MIKRO,{}", env.h.port()),
        browser.port(),
    ));
    let pool = mikro_sync::db::erp_pool_from_config(c.erp().unwrap())
        .await
        .expect("pool");
    post_one(&env, &pool).await;
    let mut pairs = mssql(&env, "127.0.0.1\\MIKRO".into(), browser.port());
    pairs.push(("MSSQL_PORT", env.h.port().to_string()));
    let pool = mikro_sync::db::erp_pool_from_config(cfg(&pairs).erp().unwrap())
        .await
        .expect("pool");
    post_one(&env, &pool).await;
    assert_eq!(
        browser.requests(),
        0,
        "an explicit port never asks the browser"
    );
}

/// A UDP port where nothing answers (held, so no ICMP "port unreachable" either).
async fn silent_udp_port() -> (tokio::net::UdpSocket, u16) {
    let s = tokio::net::UdpSocket::bind(("127.0.0.1", 0)).await.unwrap();
    let p = s.local_addr().unwrap().port();
    (s, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_browser_is_a_clear_bounded_error() {
    let (_held, port) = silent_udp_port().await;
    let c = cfg(&[
        ("MSSQL_SERVER", "127.0.0.1\\MIKRO".into()),
        ("MSSQL_DATABASE", "MikroDB_V16_TEST".into()),
        ("MSSQL_USER", "sa".into()),
        ("MIKRO_SYNC_MSSQL_BROWSER_PORT", port.to_string()),
    ]);
    let t0 = Instant::now();
    let e = tokio::time::timeout(
        Duration::from_secs(30),
        mikro_sync::db::erp_pool_from_config(c.erp().unwrap()),
    )
    .await
    .expect("bounded")
    .expect_err("no port for the instance");
    println!("silent browser answered in {:?}: {e}", t0.elapsed());
    let m = e.to_string();
    assert!(
        matches!(e, mikro_sync::db::PoolError::ErpInstance(_)),
        "{m}"
    );
    assert!(
        m.contains("is the SQL Server Browser service running"),
        "{m}"
    );
    assert!(m.contains("or give the port"), "{m}");
    assert!(m.contains("MIKRO") && m.contains(&port.to_string()), "{m}");
}

/// The worker at start: exit code 2 with the fix on stderr; then doing what it says (giving the
/// port) gets past the ERP step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_stops_at_start_with_exit_code_2_and_the_remedy_works() {
    let env = full_env().await;
    let (_held, port) = silent_udp_port().await;
    let dir = tempfile::tempdir().unwrap();
    let run = |server: String| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mikro-sync"));
        cmd.arg("worker")
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("MIKRO_SYNC_PG_URL", &env.url)
            .env("MSSQL_SERVER", server)
            .env("MSSQL_DATABASE", env.h.database())
            .env("MSSQL_USER", env.h.user())
            .env("MSSQL_PASSWORD", env.h.password())
            .env("MSSQL_ENCRYPT", "plaintext")
            .env("MIKRO_SYNC_MSSQL_BROWSER_PORT", port.to_string())
            .env("MIKRO_SYNC_ERP_SYNC_INTERVAL", "off")
            .kill_on_drop(true)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd
    };
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        run("127.0.0.1\\MIKRO".into()).output(),
    )
    .await
    .expect("never a hang")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("is the SQL Server Browser service running")
            && stderr.contains("or give the port"),
        "{stderr}"
    );
    // The remedy: give the port. The worker then starts (it runs until stopped).
    let mut child = run(format!("127.0.0.1\\MIKRO,{}", env.h.port()))
        .spawn()
        .unwrap();
    let started = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    assert!(
        started.is_err(),
        "with the port given the worker keeps running: {started:?}"
    );
    child.kill().await.unwrap();
}
