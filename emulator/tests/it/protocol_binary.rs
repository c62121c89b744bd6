//! The `mikro-emulator` binary: loads `--schema` files (batches split on `GO`), prints the
//! listening address, serves tiberius, and exits 0 after a graceful shutdown on SIGTERM.

use mikro_emulator::pgcluster::PgCluster;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use tiberius::{AuthMethod, Client, Config, EncryptionLevel};
use tokio::net::TcpStream;
use tokio_util::compat::TokioAsyncWriteCompatExt;

/// Kills the emulator process if the test fails before it exits.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test]
async fn binary_loads_schema_serves_and_exits_cleanly_on_sigterm() {
    let pg = PgCluster::start().await.expect("start PostgreSQL");
    pg.create_database("bin").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.sql");
    std::fs::write(
        &schema,
        "CREATE TABLE dbo.T (id int NOT NULL, ad nvarchar(20) NOT NULL)\nGO\n\
         INSERT INTO dbo.T (id, ad) VALUES (1, N'Işık')\n  go  \n",
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_mikro-emulator"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--pg",
            &pg.url("bin"),
            "--user",
            "sa",
        ])
        .args(["--tls", "optional", "--log-level", "warn", "--schema"])
        .arg(&schema)
        .env("MIKRO_EMULATOR_PASSWORD", "Bin-Pass-1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the binary");
    let stdout = child.stdout.take().unwrap();
    let pid = child.id().to_string();
    let mut guard = KillOnDrop(Some(child));
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let addr: std::net::SocketAddr = line
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));

    let mut cfg = Config::new();
    cfg.host("127.0.0.1");
    cfg.port(addr.port());
    cfg.authentication(AuthMethod::sql_server("sa", "Bin-Pass-1"));
    cfg.encryption(EncryptionLevel::Required);
    cfg.trust_cert();
    let tcp = TcpStream::connect(cfg.get_addr()).await.unwrap();
    let mut c = Client::connect(cfg, tcp.compat_write())
        .await
        .expect("login");
    let row = c
        .query("SELECT ad FROM dbo.T WHERE id = @P1", &[&1i32])
        .await
        .unwrap()
        .into_row()
        .await
        .unwrap()
        .expect("the schema file's row");
    assert_eq!(row.get::<&str, _>(0), Some("Işık"));
    drop(c);

    // SIGTERM: graceful shutdown, exit status 0.
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let mut child = guard.0.take().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn binary_fails_loudly_on_a_bad_schema_file() {
    let pg = PgCluster::start().await.expect("start PostgreSQL");
    pg.create_database("bin").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("bad.sql");
    std::fs::write(
        &schema,
        "CREATE TABLE ok1 (id int NOT NULL)\nGO\nSELEC broken\nGO\n",
    )
    .unwrap();
    let out = tokio::task::spawn_blocking({
        let url = pg.url("bin");
        move || {
            Command::new(env!("CARGO_BIN_EXE_mikro-emulator"))
                .args(["--listen", "127.0.0.1:0", "--pg", &url, "--password", "x"])
                .arg("--schema")
                .arg(&schema)
                .output()
        }
    })
    .await
    .unwrap()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("batch 2"),
        "stderr names the failing batch: {err}"
    );
}
