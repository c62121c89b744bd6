//! TLS as configured: PostgreSQL verifies certificates by default (a self-signed server is
//! refused until its CA is configured or verification is explicitly switched off), and SQL
//! Server encryption against the emulator's TLS mode, trusting its certificate only on opt-in.

use std::collections::BTreeMap;

use mikro_emulator::harness::{Harness, HarnessOptions};
use mikro_emulator::pgcluster::{PgCluster, PgClusterOptions};
use mikro_sync::config::Config;

fn cfg(pairs: &[(&str, String)]) -> Config {
    let m: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Config::from_map(&m).expect("valid config")
}

async fn ssl_in_use(c: &Config) -> Result<bool, String> {
    let (client, conn) = mikro_sync::db::connect_web(c.web().unwrap())
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let r = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(r.get(0))
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_tls_verifies_by_default() {
    let pg = PgCluster::start_with(PgClusterOptions {
        tls: true,
        ..Default::default()
    })
    .await
    .expect("TLS cluster");
    let url = pg.url("postgres");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pg.ca_cert_pem().expect("ca pem")).unwrap();

    // PG_SSL=true, no CA configured: the self-signed certificate is rejected.
    let strict = cfg(&[
        ("MIKRO_SYNC_PG_URL", url.clone()),
        ("PG_SSL", "true".into()),
    ]);
    let err = ssl_in_use(&strict)
        .await
        .expect_err("unverifiable certificate must be refused");
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );

    // With the server's CA configured: encrypted and verified (host 127.0.0.1 is in the SAN).
    let with_ca = cfg(&[
        ("MIKRO_SYNC_PG_URL", url.clone()),
        ("PG_SSL", "true".into()),
        ("PG_SSL_ROOT_CERT", ca.display().to_string()),
    ]);
    assert!(ssl_in_use(&with_ca).await.expect("verified TLS connects"));
    // The pool path uses the same TLS.
    let pool = mikro_sync::db::web_pool_from_config(with_ca.web().unwrap()).expect("pool");
    let client = pool.get().await.expect("pooled TLS connection");
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));

    // The explicit opt-out: encrypted, not verified.
    let insecure = cfg(&[
        ("MIKRO_SYNC_PG_URL", url.clone()),
        ("PG_SSL", "true".into()),
        ("PG_SSL_INSECURE_SKIP_VERIFY", "true".into()),
    ]);
    assert!(ssl_in_use(&insecure).await.expect("opt-out connects"));

    // PG_SSL=false stays in plaintext.
    let plain = cfg(&[("MIKRO_SYNC_PG_URL", url), ("PG_SSL", "false".into())]);
    assert!(!ssl_in_use(&plain).await.expect("plaintext connects"));

    // A broken CA file is a clear error naming the setting.
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let broken = cfg(&[
        ("MIKRO_SYNC_PG_URL", pg.url("postgres")),
        ("PG_SSL", "true".into()),
        ("PG_SSL_ROOT_CERT", bad.display().to_string()),
    ]);
    let err = ssl_in_use(&broken).await.expect_err("bad CA file");
    assert!(err.contains("PG_SSL_ROOT_CERT"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_server_encryption_against_the_emulator() {
    let h = Harness::start(HarnessOptions {
        force_emulator: true,
        web_schema: false,
        web_seed: false,
        mikro_seed: false,
        ..Default::default()
    })
    .await
    .expect("harness");
    let base = |encrypt: &str, trust: &str| {
        cfg(&[
            ("MSSQL_SERVER", h.host().to_string()),
            ("MSSQL_PORT", h.port().to_string()),
            ("MSSQL_DATABASE", h.database().to_string()),
            ("MSSQL_USER", h.user().to_string()),
            ("MSSQL_PASSWORD", h.password().to_string()),
            ("MSSQL_ENCRYPT", encrypt.to_string()),
            ("MSSQL_TRUST_SERVER_CERTIFICATE", trust.to_string()),
        ])
    };
    // Encryption required, certificate not trusted (the emulator's is self-signed): refused.
    let strict = base("true", "false");
    let err = mikro_sync::doctor::connect_erp(strict.erp().unwrap())
        .await
        .expect_err("self-signed certificate must be refused without the opt-in");
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );

    // The explicit opt-in: encrypted session, queries work, through the pool as well.
    let trusted = base("true", "true");
    let mut c = mikro_sync::doctor::connect_erp(trusted.erp().unwrap())
        .await
        .expect("TLS with trusted certificate");
    assert_eq!(select_one(&mut c).await, Some(1));
    let pool = mikro_sync::db::erp_pool_from_config(trusted.erp().unwrap())
        .await
        .expect("pool");
    let mut pc = pool.get().await.expect("pooled TLS connection");
    assert_eq!(select_one(&mut pc).await, Some(1));

    // Login-only encryption and plaintext both work against an emulator offering optional TLS.
    for mode in ["false", "plaintext"] {
        let c = base(mode, "true");
        mikro_sync::doctor::connect_erp(c.erp().unwrap())
            .await
            .unwrap_or_else(|e| panic!("MSSQL_ENCRYPT={mode}: {e}"));
    }
    // The ADO form is equivalent.
    let ado = cfg(&[(
        "MIKRO_SYNC_MSSQL_ADO",
        format!(
            "server=tcp:{},{};database={};user={};password={{{}}};encrypt=true;TrustServerCertificate=true",
            h.host(),
            h.port(),
            h.database(),
            h.user(),
            h.password()
        ),
    )]);
    mikro_sync::doctor::connect_erp(ado.erp().unwrap())
        .await
        .expect("ADO string with TLS");
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_server_that_requires_encryption() {
    use mikro_emulator::{EmulatorConfig, TlsMode};
    let pg = PgCluster::start().await.expect("cluster");
    pg.create_database("erp").await.unwrap();
    let emu = mikro_emulator::start(EmulatorConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        pg_url: pg.url("erp"),
        user: "sa".into(),
        password: "Req.Tls-1".into(),
        database: "MikroDB".into(),
        tls: TlsMode::Required,
    })
    .await
    .expect("emulator");
    let c = |encrypt: &str, trust: &str| {
        cfg(&[
            ("MSSQL_SERVER", "127.0.0.1".into()),
            ("MSSQL_PORT", emu.addr.port().to_string()),
            ("MSSQL_DATABASE", "MikroDB".into()),
            ("MSSQL_USER", "sa".into()),
            ("MSSQL_PASSWORD", "Req.Tls-1".into()),
            ("MSSQL_ENCRYPT", encrypt.into()),
            ("MSSQL_TRUST_SERVER_CERTIFICATE", trust.into()),
        ])
    };
    // The server's requirement wins over a client asking for plaintext (tiberius follows the
    // server, as SQL Server's "force encryption" does), so the certificate check still applies:
    for encrypt in ["plaintext", "false", "true"] {
        let err = mikro_sync::doctor::connect_erp(c(encrypt, "false").erp().unwrap())
            .await
            .expect_err("an untrusted self-signed certificate is refused");
        assert!(
            err.to_lowercase().contains("certificate") || err.contains("UnknownIssuer"),
            "MSSQL_ENCRYPT={encrypt}: {err}"
        );
    }
    // With the explicit trust opt-in the encrypted session works.
    let mut client = mikro_sync::doctor::connect_erp(c("true", "true").erp().unwrap())
        .await
        .expect("encrypted session");
    assert_eq!(select_one(&mut client).await, Some(1));
    drop(client);
    emu.shutdown().await;
}

/// The SQL Server CA file: a name the TLS library cannot type is refused with the fix; renamed as
/// the message says, the emulator's own certificate verifies the encrypted session (no blind trust).
#[tokio::test(flavor = "multi_thread")]
async fn sql_server_ca_file_verifies_the_certificate() {
    use mikro_emulator::{EmulatorConfig, TlsMode};
    let pg = PgCluster::start().await.expect("cluster");
    pg.create_database("erp").await.unwrap();
    let emu = mikro_emulator::start(EmulatorConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        pg_url: pg.url("erp"),
        user: "sa".into(),
        password: "Ca.File-1".into(),
        database: "MikroDB".into(),
        tls: TlsMode::Required,
    })
    .await
    .expect("emulator");
    let dir = tempfile::tempdir().unwrap();
    let pairs = |ca: &std::path::Path| {
        let m: BTreeMap<String, String> = [
            ("MSSQL_SERVER", "127.0.0.1".to_string()),
            ("MSSQL_PORT", emu.addr.port().to_string()),
            ("MSSQL_DATABASE", "MikroDB".into()),
            ("MSSQL_USER", "sa".into()),
            ("MSSQL_PASSWORD", "Ca.File-1".into()),
            ("MSSQL_ENCRYPT", "true".into()),
            ("MSSQL_TRUST_CERT_CA", ca.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Config::from_map(&m)
    };
    let pem = emu.certificate_pem().expect("TLS identity").to_string();
    let txt = dir.path().join("mikro-ca.txt");
    std::fs::write(&txt, &pem).unwrap();
    let err = pairs(&txt).expect_err("a CA file the TLS library cannot type");
    let msg = err.to_string();
    let lines: Vec<&str> = msg
        .lines()
        .filter(|l| l.contains("MSSQL_TRUST_CERT_CA"))
        .collect();
    assert_eq!(lines.len(), 1, "one line for the setting: {msg}");
    assert!(
        lines[0].contains("mikro-ca.txt") && lines[0].contains("*.pem"),
        "{msg}"
    );

    // Doing what the message says: the same file named *.pem.
    let ca = dir.path().join("mikro-ca.pem");
    std::fs::rename(&txt, &ca).unwrap();
    let ok = pairs(&ca).expect("valid config");
    let mut client = mikro_sync::doctor::connect_erp(ok.erp().unwrap())
        .await
        .expect("verified against the configured CA");
    assert_eq!(select_one(&mut client).await, Some(1));
    drop(client);

    // A CA that did not sign the server's certificate is a verification failure, not a pass.
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, pg_cluster_ca(&pg).await).unwrap();
    let err = mikro_sync::doctor::connect_erp(pairs(&other).unwrap().erp().unwrap())
        .await
        .expect_err("a foreign CA must not verify the server");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    emu.shutdown().await;
}

/// `SELECT 1` over an ERP connection: the value of its one row.
async fn select_one(c: &mut mikro_sync::db::ErpClient) -> Option<i32> {
    c.simple_query("SELECT 1")
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .expect("a row")
        .get::<i32, _>(0)
}

/// Any CA that is not the emulator's: a TLS PostgreSQL cluster's self-signed certificate.
async fn pg_cluster_ca(_keep_alive: &PgCluster) -> String {
    let tls = PgCluster::start_with(PgClusterOptions {
        tls: true,
        ..Default::default()
    })
    .await
    .expect("TLS cluster");
    tls.ca_cert_pem().expect("ca pem").to_string()
}

/// A TLS version the server refuses (a client held to TLS 1.1 against the emulator's TLS 1.2+):
/// `doctor` says so in one line and names OPENSSL_CONF; the file docs/configuration.md shows for
/// old servers, given as OPENSSL_CONF exactly as documented, is valid and still connects.
#[tokio::test(flavor = "multi_thread")]
async fn sql_server_tls_version_refused_names_openssl_conf() {
    let h = Harness::start(HarnessOptions {
        force_emulator: true,
        web_schema: false,
        web_seed: false,
        mikro_seed: false,
        ..Default::default()
    })
    .await
    .expect("harness");
    let dir = tempfile::tempdir().unwrap();
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let legacy = docs
        .split("```ini\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("docs/configuration.md shows the OPENSSL_CONF file");
    assert!(legacy.contains("MinProtocol = TLSv1"), "{legacy}");
    let legacy_path = dir.path().join("openssl-legacy.cnf");
    std::fs::write(&legacy_path, legacy).unwrap();
    // A client held below what the server speaks: the same file with TLS 1.2 and 1.3 switched
    // off (as options: native-tls sets the minimum and maximum version itself).
    let old_path = dir.path().join("openssl-tls11.cnf");
    std::fs::write(
        &old_path,
        format!("{legacy}Protocol = ALL, -TLSv1.2, -TLSv1.3\n"),
    )
    .unwrap();

    let doctor = |conf: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mikro-sync"))
            .args(["doctor", "--quick"])
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("OPENSSL_CONF", conf)
            .env("MIKRO_SYNC_PG_URL", h.web_url())
            .env("MSSQL_SERVER", h.host())
            .env("MSSQL_PORT", h.port().to_string())
            .env("MSSQL_DATABASE", h.database())
            .env("MSSQL_USER", h.user())
            .env("MSSQL_PASSWORD", h.password())
            .env("MSSQL_ENCRYPT", "true")
            .env("MSSQL_TRUST_SERVER_CERTIFICATE", "true")
            .output()
            .expect("run mikro-sync doctor")
    };
    let out = doctor(&old_path);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "a TLS 1.1 client must be refused: {text}"
    );
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("OPENSSL_CONF"))
        .collect();
    assert_eq!(lines.len(), 1, "one line names the remedy: {text}");
    assert!(lines[0].contains("TLS"), "{text}");
    assert!(
        !text.contains(h.password()),
        "no secret in the output: {text}"
    );

    let out = doctor(&legacy_path);
    assert!(
        out.status.success(),
        "the documented OPENSSL_CONF connects: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `doctor` against SQL Servers that encrypt differently (the emulator's `--tls off`, optional,
/// `required`): a handshake failure names the exact setting, doing what it says connects, and
/// "the password travels in clear text" is printed exactly where it is true.
#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_the_tls_setting_and_says_when_the_password_is_clear() {
    use mikro_emulator::{EmulatorConfig, TlsMode};
    let pg = PgCluster::start().await.expect("cluster");
    pg.create_database("erp").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    const PASSWORD: &str = "Tls.Modes-1";
    let mut emulators = Vec::new();
    for tls in [TlsMode::Off, TlsMode::Optional, TlsMode::Required] {
        emulators.push(
            mikro_emulator::start(EmulatorConfig {
                listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                pg_url: pg.url("erp"),
                user: "sa".into(),
                password: PASSWORD.into(),
                database: "MikroDB".into(),
                tls,
            })
            .await
            .expect("emulator"),
        );
    }
    let doctor = |port: u16, encrypt: &str, quick: bool| {
        let mut args = vec!["doctor"];
        if quick {
            args.push("--quick");
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mikro-sync"))
            .args(&args)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("MIKRO_SYNC_PG_URL", pg.url("erp"))
            .env("MSSQL_SERVER", "127.0.0.1")
            .env("MSSQL_PORT", port.to_string())
            .env("MSSQL_DATABASE", "MikroDB")
            .env("MSSQL_USER", "sa")
            .env("MSSQL_PASSWORD", PASSWORD)
            .env("MSSQL_ENCRYPT", encrypt)
            .env("MSSQL_TRUST_SERVER_CERTIFICATE", "true")
            .output()
            .expect("run mikro-sync doctor");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(PASSWORD), "no secret in the output: {text}");
        text
    };
    let tls_line = |text: &str| -> String {
        text.lines()
            .find(|l| l.contains("Mikro TLS:"))
            .unwrap_or_else(|| panic!("no Mikro TLS line: {text}"))
            .to_string()
    };
    let (off, optional, required) = (
        emulators[0].addr.port(),
        emulators[1].addr.port(),
        emulators[2].addr.port(),
    );

    // A server without any TLS: true and false both fail in the handshake; the fix names the
    // server, the exact setting and what it costs.
    for encrypt in ["true", "false"] {
        let text = doctor(off, encrypt, true);
        let fail = text
            .lines()
            .find(|l| l.contains("[FAIL] Mikro database"))
            .unwrap_or_else(|| panic!("MSSQL_ENCRYPT={encrypt} must fail: {text}"));
        assert!(fail.contains("cannot connect"), "{fail}");
        let fixes: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("MSSQL_ENCRYPT=plaintext"))
            .collect();
        assert_eq!(fixes.len(), 1, "one line names the setting: {text}");
        assert!(fixes[0].contains("SQL Server 2022"), "{text}");
        assert!(fixes[0].contains("password"), "{text}");
        assert!(fixes[0].contains("clear text"), "{text}");
    }
    // Doing what it says: plaintext connects, and the password is said to be in clear text.
    let text = doctor(off, "plaintext", false);
    assert!(text.contains("[ ok ] Mikro database: connected"), "{text}");
    let line = tls_line(&text);
    assert!(line.contains("[warn]"), "{line}");
    assert!(
        line.contains("login password and the documents travel in clear text"),
        "{line}"
    );

    // A classic server (login encryption on offer): plaintext sends the password in clear,
    // false does not.
    let line = tls_line(&doctor(optional, "plaintext", false));
    assert!(
        line.contains("password and the documents travel in clear text"),
        "{line}"
    );
    let line = tls_line(&doctor(optional, "false", false));
    assert!(line.contains("only the login is encrypted"), "{line}");
    assert!(
        line.contains("password is not sent in clear text"),
        "{line}"
    );
    let line = tls_line(&doctor(optional, "true", false));
    assert!(line.contains("encrypted"), "{line}");
    assert!(!line.contains("clear text"), "{line}");

    // A server that forces encryption encrypts whatever the client asks: no clear-text warning.
    for encrypt in ["plaintext", "false"] {
        let line = tls_line(&doctor(required, encrypt, false));
        assert!(line.contains("[ ok ]"), "{line}");
        assert!(line.contains("forces encryption"), "{line}");
        assert!(!line.contains("clear text"), "{line}");
    }
    for e in emulators {
        e.shutdown().await;
    }
}
