//! The emulator from outside Rust: FreeTDS `tsql`, python-tds (`pytds`) and npm `mssql`
//! (tedious) must log in, run a parameterised query, round-trip Turkish text, get SQL Server's
//! duplicate-key error (2627), and commit / roll back transactions — so the server is not merely
//! "tiberius-compatible". tedious runs with encrypt=true (its default) and encrypt=false.
//!
//! When a tool is missing the test is skipped with a loud message, unless
//! `MIKRO_REQUIRE_EXTERNAL_CLIENTS=1` (CI sets it), in which case it fails.

use std::process::Stdio;
use std::time::Duration;

use mikro_emulator::harness::{Harness, HarnessOptions};
use mikro_emulator::TlsMode;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

fn required() -> bool {
    std::env::var("MIKRO_REQUIRE_EXTERNAL_CLIENTS").is_ok_and(|v| v == "1" || v == "true")
}

/// Returns false (after a loud message) when the tool is missing and not required; panics when
/// it is missing and required.
async fn available(what: &str, program: &str, args: &[&str], install: &str) -> bool {
    let ok = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        return true;
    }
    if required() {
        panic!(
            "{what} is not available but MIKRO_REQUIRE_EXTERNAL_CLIENTS=1; install it: {install}"
        );
    }
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! SKIPPED: {what} is not installed ({install}).\n\
         !!! Set MIKRO_REQUIRE_EXTERNAL_CLIENTS=1 to make this a failure (CI does).\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    false
}

const TSQL_SCRIPT: &str = "\
CREATE TABLE ext_tsql_t (id int NOT NULL, ad nvarchar(60) NOT NULL, CONSTRAINT PK_ext_tsql_t PRIMARY KEY (id))
go
INSERT INTO ext_tsql_t (id, ad) VALUES (1, N'ğüşıöçİ ĞÜŞIÖÇ')
go
SELECT N'turkish=' + ad AS v FROM ext_tsql_t WHERE id = 1
go
DECLARE @kod nvarchar(25)
SET @kod = N'120.01.003'
SELECT N'param=' + cari_unvan1 AS v FROM CARI_HESAPLAR WHERE cari_kod = @kod
go
INSERT INTO ext_tsql_t (id, ad) VALUES (1, N'duplicate')
go
BEGIN TRAN
INSERT INTO ext_tsql_t (id, ad) VALUES (2, N'committed-row')
COMMIT TRAN
go
BEGIN TRAN
INSERT INTO ext_tsql_t (id, ad) VALUES (3, N'rolledback-row')
ROLLBACK TRAN
go
SELECT N'row=' + ad AS v FROM ext_tsql_t ORDER BY id
go
SELECT N'script-' + N'end' AS v
go
exit
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freetds_tsql_login_params_turkish_dupkey_transactions() {
    if !available(
        "FreeTDS tsql",
        "sh",
        &["-c", "command -v tsql"],
        "Debian: apt-get install freetds-bin",
    )
    .await
    {
        return;
    }
    let h = Harness::start(HarnessOptions::default())
        .await
        .expect("harness");
    // A private freetds.conf: TDS 7.4 and UTF-8 on the client side, whatever /etc says.
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("freetds.conf");
    std::fs::write(
        &conf,
        "[global]\n\ttds version = 7.4\n\tclient charset = UTF-8\n",
    )
    .expect("write freetds.conf");

    let mut child = Command::new("tsql")
        .args(["-H", h.host(), "-p", &h.port().to_string()])
        .args(["-U", h.user(), "-P", h.password(), "-D", h.database()])
        .env("TDSVER", "7.4")
        .env("FREETDSCONF", &conf)
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn tsql");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(TSQL_SCRIPT.as_bytes())
        .await
        .expect("write script");
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("tsql did not finish within 60 s")
        .expect("tsql output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!("{stdout}\n{stderr}");
    let ctx = format!("--- tsql stdout ---\n{stdout}\n--- tsql stderr ---\n{stderr}");

    // Login: a failed login prints "Login failed" / "There was a problem connecting".
    assert!(
        !all.contains("problem connecting") && !all.contains("Login failed"),
        "login failed\n{ctx}"
    );
    assert!(
        all.contains("turkish=ğüşıöçİ ĞÜŞIÖÇ"),
        "Turkish round trip\n{ctx}"
    );
    assert!(
        all.contains("param=Çelik Hırdavat"),
        "parameterised (DECLARE/SET) query\n{ctx}"
    );
    assert!(
        all.contains("Msg 2627"),
        "duplicate key must be error 2627\n{ctx}"
    );
    assert!(all.contains("row=committed-row"), "committed row\n{ctx}");
    assert!(
        !all.contains("row=rolledback-row"),
        "rolled-back row is visible\n{ctx}"
    );
    assert!(
        !all.contains("row=duplicate"),
        "duplicate row was stored\n{ctx}"
    );
    assert!(
        all.contains("script-end"),
        "script did not run to the end\n{ctx}"
    );
    eprintln!("{ctx}");
    // No other errors than the expected duplicate key.
    let msgs: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with("Msg ") && !l.starts_with("Msg 2627"))
        .collect();
    assert!(msgs.is_empty(), "unexpected errors {msgs:?}\n{ctx}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_tds_login_params_turkish_dupkey_transactions() {
    if !available(
        "python-tds",
        "python3",
        &["-c", "import pytds"],
        "pip install python-tds",
    )
    .await
    {
        return;
    }
    let h = Harness::start(HarnessOptions::default())
        .await
        .expect("harness");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/external/pytds_check.py");
    let child = Command::new("python3")
        .arg(script)
        .args([
            h.host(),
            &h.port().to_string(),
            h.user(),
            h.password(),
            h.database(),
        ])
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn python3");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("python-tds check did not finish within 60 s")
        .expect("python output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "python-tds check failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        out.status
    );
}

const MSSQL_INSTALL: &str = "apt-get install nodejs npm && npm install --prefix emulator/tests/external (.ci/install-deps does both)";

const NODE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/external");

/// A harness for the tedious tests, or `None` (after the loud skip message) without Node.
async fn node_harness(tls: TlsMode) -> Option<Harness> {
    let probe = format!("require('{NODE_DIR}/node_modules/mssql')");
    if !available(
        "npm mssql (tedious)",
        "node",
        &["-e", &probe],
        MSSQL_INSTALL,
    )
    .await
    {
        return None;
    }
    Some(
        Harness::start(HarnessOptions {
            emulator_tls: tls,
            ..HarnessOptions::default()
        })
        .await
        .expect("harness"),
    )
}

/// Runs `external/mssql_check.js`; (passed, stdout, stderr).
async fn run_mssql_check(h: &Harness, encrypt: bool, connect_only: bool) -> (bool, String, String) {
    let child = Command::new("node")
        .arg(format!("{NODE_DIR}/mssql_check.js"))
        .args([
            h.host(),
            &h.port().to_string(),
            h.user(),
            h.password(),
            h.database(),
            if encrypt { "true" } else { "false" },
            if connect_only { "connect-only" } else { "full" },
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn node");
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("mssql check did not finish within 60 s")
        .expect("node output");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (
        out.status.success() && stdout.contains("ALL OK"),
        stdout,
        stderr,
    )
}

/// npm `mssql` (tedious) with the given `encrypt` option against the default server.
async fn node_mssql(encrypt: bool) {
    let Some(h) = node_harness(TlsMode::Optional).await else {
        return;
    };
    let (ok, stdout, stderr) = run_mssql_check(&h, encrypt, false).await;
    assert!(
        ok,
        "npm mssql check (encrypt={encrypt}) failed\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_mssql_encrypt_true_trust_server_certificate() {
    node_mssql(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_mssql_encrypt_false() {
    node_mssql(false).await;
}

/// tedious against a server that requires encryption (`--tls required`) and one that refuses it
/// (`--tls off`), as in the README's compatibility matrix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_mssql_against_servers_that_require_or_refuse_encryption() {
    let Some(req) = node_harness(TlsMode::Required).await else {
        return;
    };
    let (ok, stdout, stderr) = run_mssql_check(&req, true, true).await;
    assert!(
        ok,
        "encrypt=true against --tls required\n{stdout}\n{stderr}"
    );
    // tedious refuses by itself, as against SQL Server with Force Encryption.
    let (ok, stdout, _) = run_mssql_check(&req, false, true).await;
    assert!(
        !ok && stdout.contains("Server requires encryption"),
        "encrypt=false against --tls required\n{stdout}"
    );
    drop(req);
    let Some(off) = node_harness(TlsMode::Off).await else {
        return;
    };
    let (ok, stdout, stderr) = run_mssql_check(&off, false, true).await;
    assert!(ok, "encrypt=false against --tls off\n{stdout}\n{stderr}");
    // tedious does not insist on encrypt=true (only 'strict' would): against ENCRYPT_NOT_SUP
    // it logs in in plaintext, as it would against such a SQL Server.
    let (ok, stdout, stderr) = run_mssql_check(&off, true, true).await;
    assert!(ok, "encrypt=true against --tls off\n{stdout}\n{stderr}");
}
