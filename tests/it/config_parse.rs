//! Configuration parsing: the old tool's names, URL forms, TOML, defaults, and bad values
//! rejected with a message naming the variable. Pure: no process environment is touched.

use std::collections::BTreeMap;
use std::time::Duration;

use mikro_sync::config::{parse_toml, Config, ConfigError, ErpEncrypt, LogFormat, PgSslMode};

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn invalid_vars(r: Result<Config, ConfigError>) -> Vec<String> {
    match r {
        Err(ConfigError::Invalid(errs)) => errs.into_iter().map(|e| e.var).collect(),
        Err(e) => panic!("expected Invalid, got {e}"),
        Ok(_) => panic!("expected an error"),
    }
}

/// A `.env` exactly as the old Node tool's operators have it.
fn old_env() -> BTreeMap<String, String> {
    map(&[
        ("PG_HOST", "db.example.supabase.co"),
        ("PG_PORT", "6543"),
        ("PG_DATABASE", "postgres"),
        ("PG_USER", "postgres.abc"),
        ("PG_PASSWORD", "pg-s3cret!"),
        ("PG_SSL", "true"),
        ("MSSQL_SERVER", "192.168.1.10"),
        ("MSSQL_PORT", "1433"),
        ("MSSQL_DATABASE", "MikroDB_V16_FIRMA"),
        ("MSSQL_USER", "mikrosync"),
        ("MSSQL_PASSWORD", "ms;s3cret="),
        ("MSSQL_ENCRYPT", "false"),
        ("MSSQL_TRUST_SERVER_CERTIFICATE", "true"),
        ("BATCH_SIZE", "10"),
        ("MAX_RETRY_COUNT", "5"),
        ("LOG_LEVEL", "verbose"),
    ])
}

#[test]
fn old_tool_names_are_accepted_unchanged() {
    let c = Config::from_map(&old_env()).expect("old .env parses");
    let w = c.web().expect("web configured");
    assert_eq!(w.host, "db.example.supabase.co");
    assert_eq!(w.port, 6543);
    assert_eq!(w.database, "postgres");
    assert_eq!(w.user, "postgres.abc");
    assert_eq!(w.password.expose(), "pg-s3cret!");
    assert_eq!(w.tls.mode, PgSslMode::Require);
    assert!(w.tls.verify, "certificates are verified by default");
    let e = c.erp().expect("erp configured");
    assert_eq!(e.host, "192.168.1.10");
    assert_eq!(e.port, 1433);
    assert_eq!(e.database, "MikroDB_V16_FIRMA");
    assert_eq!(e.encrypt, ErpEncrypt::LoginOnly);
    assert!(e.trust_server_certificate);
    assert_eq!(c.worker.batch_size, 10);
    assert_eq!(c.worker.max_data_attempts, 5);
    assert_eq!(c.log_level, "debug", "winston's `verbose` maps to debug");
    // The generated ADO string quotes the password with ; and = in it and tiberius accepts it.
    let ado = e.ado_string();
    tiberius::Config::from_ado_string(&ado).expect("generated ADO string parses");
    assert!(ado.contains("password={ms;s3cret=}"), "{ado}");
}

#[test]
fn defaults() {
    let c = Config::from_map(&BTreeMap::new()).expect("empty config is valid");
    assert!(c.web.is_none() && c.erp.is_none());
    assert!(c
        .web()
        .unwrap_err()
        .to_string()
        .contains("MIKRO_SYNC_PG_URL"));
    assert!(c.erp().unwrap_err().to_string().contains("MSSQL_SERVER"));
    assert_eq!(c.posting.tz, chrono_tz::Europe::Istanbul);
    assert_eq!(c.worker.poll_interval, Duration::from_secs(5));
    assert_eq!(c.erp_sync_interval, Some(Duration::from_secs(60)));
    assert_eq!(c.metrics_listen, None, "metrics are off by default");
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.posting.sale_series, "ST");
    assert_eq!(c.posting.collection_series, "TH");
    assert_eq!(c.worker.prefetch, None, "prefetch is automatic");
    let c = Config::from_map(&map(&[("MIKRO_SYNC_WORKER_PREFETCH", "0")])).expect("valid");
    assert_eq!(c.worker.prefetch, Some(0), "0 turns prefetch off");
}

#[test]
fn url_forms() {
    let c = Config::from_map(&map(&[
        (
            "MIKRO_SYNC_PG_URL",
            "postgres://app:p%40ss@db.example.com:5433/shop?sslmode=require",
        ),
        (
            "MIKRO_SYNC_MSSQL_ADO",
            "server=tcp:10.0.0.5\\MIKRO,1444;database=MikroDB_V16_X;user=sync;password={a;b};encrypt=true;TrustServerCertificate=false",
        ),
    ]))
    .expect("URL forms parse");
    let w = c.web().unwrap();
    assert_eq!(
        (
            w.host.as_str(),
            w.port,
            w.database.as_str(),
            w.user.as_str()
        ),
        ("db.example.com", 5433, "shop", "app")
    );
    assert_eq!(w.password.expose(), "p@ss");
    assert_eq!(w.tls.mode, PgSslMode::Require);
    assert!(w.tls.verify);
    let e = c.erp().unwrap();
    assert_eq!(e.host, "10.0.0.5");
    assert_eq!(e.instance.as_deref(), Some("MIKRO"));
    assert_eq!(e.port, 1444);
    assert_eq!(e.database, "MikroDB_V16_X");
    assert_eq!(e.user, "sync");
    assert_eq!(e.password.expose(), "a;b");
    assert_eq!(e.encrypt, ErpEncrypt::Required);
    assert!(
        !e.trust_server_certificate,
        "trusting any certificate is opt-in"
    );

    // Other URL parameters are kept.
    let c = Config::from_map(&map(&[(
        "MIKRO_SYNC_PG_URL",
        "postgres://u:pw@h1:5432/db?options=-c%20search_path%3Dshop&application_name=shop-sync",
    )]))
    .unwrap();
    let pc = c.web().unwrap().pg_config();
    assert_eq!(pc.get_options(), Some("-c search_path=shop"));
    assert_eq!(pc.get_application_name(), Some("shop-sync"));
    assert_eq!(pc.get_password(), Some(&b"pw"[..]));

    // DATABASE_URL works as well, and a URL without sslmode does not silently use TLS.
    let c = Config::from_map(&map(&[("DATABASE_URL", "postgres://u@localhost/db")])).unwrap();
    assert_eq!(c.web().unwrap().tls.mode, PgSslMode::Disable);
    assert_eq!(c.web().unwrap().source, "DATABASE_URL");
}

#[test]
fn tls_opt_out_and_opt_in_are_explicit() {
    let mut m = old_env();
    m.insert("PG_SSL_INSECURE_SKIP_VERIFY".into(), "true".into());
    m.insert(
        "PG_SSL_ROOT_CERT".into(),
        "/etc/mikro-sync/supabase-ca.crt".into(),
    );
    m.insert("MSSQL_ENCRYPT".into(), "true".into());
    m.insert("MSSQL_TRUST_SERVER_CERTIFICATE".into(), "false".into());
    let c = Config::from_map(&m).unwrap();
    assert!(!c.web().unwrap().tls.verify);
    assert_eq!(c.erp().unwrap().encrypt, ErpEncrypt::Required);
    assert!(!c.erp().unwrap().trust_server_certificate);
    m.remove("MSSQL_ENCRYPT");
    m.remove("MSSQL_TRUST_SERVER_CERTIFICATE");
    let c = Config::from_map(&m).unwrap();
    assert_eq!(
        c.erp().unwrap().encrypt,
        ErpEncrypt::Required,
        "encryption is on by default"
    );
    assert!(!c.erp().unwrap().trust_server_certificate);
}

#[test]
fn bad_values_name_the_variable() {
    let cases: &[(&str, &str)] = &[
        ("PG_PORT", "five"),
        ("PG_SSL", "maybe"),
        ("MSSQL_PORT", "70000"),
        ("MSSQL_ENCRYPT", "sometimes"),
        ("MSSQL_TRUST_SERVER_CERTIFICATE", "yes please"),
        ("BATCH_SIZE", "0"),
        ("MAX_RETRY_COUNT", "-1"),
        ("LOG_LEVEL", "loud=="),
        ("MIKRO_SYNC_POLL_INTERVAL", "soon"),
        ("MIKRO_SYNC_TIMEZONE", "Mars/Olympus"),
        ("MIKRO_SYNC_METRICS_LISTEN", "everywhere"),
        ("MIKRO_SYNC_LOG_FORMAT", "xml"),
        ("MIKRO_SYNC_WORKER_CONCURRENCY", "lots"),
        ("MIKRO_SYNC_WORKER_PREFETCH", "-2"),
        ("MIKRO_SYNC_PG_URL", "postgres://u@h:notaport/db"),
        ("MIKRO_SYNC_MSSQL_ADO", "server=tcp:h,1433;encrypt=banana"),
        (
            "MIKRO_SYNC_MSSQL_ADO",
            "server=tcp:h,14x3;user=u;password=p",
        ),
        ("MIKRO_SYNC_MSSQL_ADO", "server=tcp:h,0;user=u;password=p"),
        (
            "MIKRO_SYNC_MSSQL_ADO",
            "server=tcp:h,70000;user=u;password=p",
        ),
    ];
    for (var, bad) in cases {
        let mut m = old_env();
        m.insert(var.to_string(), bad.to_string());
        let r = Config::from_map(&m);
        let vars = invalid_vars(r);
        assert!(
            vars.iter().any(|v| v == var),
            "{var}={bad} should be rejected naming {var}, got {vars:?}"
        );
    }
    // Several bad values are all reported at once, and the message names each.
    let mut m = old_env();
    m.insert("PG_PORT".into(), "x".into());
    m.insert("BATCH_SIZE".into(), "y".into());
    let msg = Config::from_map(&m).unwrap_err().to_string();
    assert!(
        msg.contains("PG_PORT") && msg.contains("BATCH_SIZE"),
        "{msg}"
    );
    // Partially configured PG_* without the required names.
    let vars = invalid_vars(Config::from_map(&map(&[("PG_HOST", "db")])));
    assert!(vars.contains(&"PG_DATABASE".to_string()) && vars.contains(&"PG_USER".to_string()));
}

#[test]
fn secrets_never_printed() {
    let c = Config::from_map(&old_env()).unwrap();
    let shown = format!("{}\n{:?}", c.render_masked(), c);
    assert!(!shown.contains("pg-s3cret!"), "{shown}");
    assert!(!shown.contains("ms;s3cret="), "{shown}");
    assert!(shown.contains("***"));
    let c = Config::from_map(&map(&[(
        "MIKRO_SYNC_PG_URL",
        "postgres://app:hunter2@db/shop",
    )]))
    .unwrap();
    let shown = format!("{}\n{:?}", c.render_masked(), c);
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn toml_file_flattens_to_the_same_names() {
    let m = parse_toml(
        r#"
        LOG_LEVEL = "warn"
        [pg]
        host = "127.0.0.1"
        database = "shop"
        user = "app"
        ssl = false
        [mssql]
        server = "erp.local,1500"
        database = "MikroDB"
        user = "sync"
        encrypt = "plaintext"
        [mikro_sync]
        poll_interval = "2s"
        metrics_listen = 9100
        series_satis = "WS"
        timezone = "Europe/Berlin"
        "#,
    )
    .expect("toml parses");
    let c = Config::from_map(&m).expect("valid");
    assert_eq!(c.web().unwrap().host, "127.0.0.1");
    assert_eq!(c.erp().unwrap().port, 1500);
    assert_eq!(c.erp().unwrap().encrypt, ErpEncrypt::Plaintext);
    assert_eq!(c.worker.poll_interval, Duration::from_secs(2));
    assert_eq!(
        c.metrics_listen.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9100")
    );
    assert_eq!(c.posting.sale_series, "WS");
    assert_eq!(c.posting.tz, chrono_tz::Europe::Berlin);
    assert_eq!(c.log_level, "warn");
}

#[test]
fn durations_and_switches() {
    let c = Config::from_map(&map(&[
        ("MIKRO_SYNC_ERP_SYNC_INTERVAL", "off"),
        ("MIKRO_SYNC_SETTLE_WINDOW", "90"),
        ("MIKRO_SYNC_BACKOFF_INITIAL", "250ms"),
        ("MIKRO_SYNC_METRICS_LISTEN", "on"),
        ("MIKRO_SYNC_LOG_FORMAT", "json"),
    ]))
    .unwrap();
    assert_eq!(c.erp_sync_interval, None);
    assert_eq!(c.worker.settle_window, Duration::from_secs(90));
    assert_eq!(c.worker.backoff_initial, Duration::from_millis(250));
    assert_eq!(
        c.metrics_listen.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9464")
    );
    assert_eq!(c.log_format, LogFormat::Json);
}
