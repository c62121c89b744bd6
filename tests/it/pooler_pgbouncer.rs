//! The daemon behind a real PgBouncer (Debian's `pgbouncer`): in session mode doctor accepts it
//! and a worker posts through it with LISTEN/NOTIFY; in transaction mode `worker`, `worker --poll-only` and
//! `sync` refuse at start with exit code 2 and one line saying what to use, `doctor` says
//! "transaction pooler: not supported", and no other client's session settings change.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::FullEnv;

const PGBOUNCER: &str = "/usr/sbin/pgbouncer";

/// A PgBouncer process in front of the harness's PostgreSQL; killed on drop.
struct PgBouncer {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgBouncer {
    /// Starts PgBouncer in `mode` with `pool_size` server connections per pool.
    async fn start(pg_port: u16, mode: &str, pool_size: u32) -> PgBouncer {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let port = free_port();
        let p = |f: &str| dir.path().join(f).display().to_string();
        std::fs::write(p("userlist.txt"), "\"postgres\" \"\"\n").unwrap();
        std::fs::write(
            p("pgbouncer.ini"),
            format!(
                "[databases]\n* = host=127.0.0.1 port={pg_port}\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {}\npool_mode = {mode}\n\
                 default_pool_size = {pool_size}\nmax_client_conn = 200\nlogfile = {}\n\
                 ignore_startup_parameters = extra_float_digits,options\n",
                p("userlist.txt"),
                p("pgbouncer.log"),
            ),
        )
        .unwrap();
        for f in ["userlist.txt", "pgbouncer.ini"] {
            std::fs::set_permissions(p(f), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        // PgBouncer refuses to run as root.
        let mut cmd = if unsafe_is_root() {
            let mut c = std::process::Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                PGBOUNCER,
            ]);
            c
        } else {
            std::process::Command::new(PGBOUNCER)
        };
        let child = cmd
            .arg(p("pgbouncer.ini"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .expect("start pgbouncer (apt-get install pgbouncer; .ci/install-deps does)");
        let t0 = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "pgbouncer did not listen: {}",
                std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        PgBouncer {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/web", self.port)
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn command(env: &FullEnv, pg_url: &str, dir: &Path, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_mikro-sync"));
    c.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MIKRO_SYNC_PG_URL", pg_url)
        .env("MIKRO_SYNC_MSSQL_ADO", env.h.erp_ado())
        .env("LOG_LEVEL", "info")
        .kill_on_drop(true);
    c
}

/// Runs a command to its end (bounded: a hang fails the test); exit code and all output.
async fn run(env: &FullEnv, pg_url: &str, args: &[&str]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        command(env, pg_url, dir.path(), args).output(),
    )
    .await
    .unwrap_or_else(|_| panic!("`mikro-sync {}` did not end within 90 s", args.join(" ")))
    .expect("run mikro-sync");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// application_name, statement_timeout, lock_timeout and plan_cache_mode as seen by `n`
/// concurrent transactions of plain clients through the pooler (one per server connection).
async fn sessions_seen(url: &str, n: usize) -> Vec<String> {
    let mut clients = Vec::new();
    for _ in 0..n {
        let c = common::connect(url).await;
        c.simple_query("BEGIN").await.unwrap();
        clients.push(c);
    }
    let mut seen = Vec::new();
    for c in &clients {
        let rows = c
            .simple_query(
                "SELECT pg_backend_pid()::text, current_setting('application_name') || ' / ' || \
                 current_setting('statement_timeout') || ' / ' || current_setting('lock_timeout') \
                 || ' / ' || current_setting('plan_cache_mode')",
            )
            .await
            .unwrap();
        for m in rows {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                seen.push(r.get(1).unwrap_or_default().to_string());
            }
        }
    }
    for c in &clients {
        c.simple_query("ROLLBACK").await.unwrap();
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn transaction_pooler_is_refused_without_touching_other_sessions() {
    let env = common::full_env().await;
    // 4 server connections: four concurrent transactions of a test client visit every server
    // connection the daemon could have used.
    let bouncer = PgBouncer::start(env.h.pg().port(), "transaction", 4).await;
    let url = bouncer.url();
    let before = sessions_seen(&url, 4).await;
    assert_eq!(before.len(), 4);

    for args in [
        &["worker"][..],
        &["worker", "--poll-only"][..],
        &["sync"][..],
        &["sync-bidirectional"][..],
    ] {
        let (code, out) = run(&env, &url, args).await;
        assert_eq!(code, 2, "`mikro-sync {}`: {out}", args.join(" "));
        let line = out
            .lines()
            .find(|l| l.contains("transaction-mode pooler"))
            .unwrap_or_else(|| panic!("no refusal line in: {out}"));
        for part in [
            &format!("127.0.0.1:{}", bouncer.port)[..],
            "needs a session",
            "session pooler",
            "5432",
            "6543",
            "docs/install.md",
        ] {
            assert!(line.contains(part), "{part:?} missing from: {line}");
        }
        assert!(!out.contains("ready: listening"), "{out}");
    }

    let (code, out) = run(&env, &url, &["doctor"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("transaction pooler: not supported"), "{out}");
    assert!(out.contains("session pooler"), "{out}");
    assert!(!out.contains("no sync_queue table"), "{out}");

    // The shop's own clients through the same pooler see their defaults unchanged.
    let after = sessions_seen(&url, 4).await;
    assert_eq!(before, after);
    for s in &after {
        assert!(!s.contains("mikro-sync"), "{s}");
    }
    // And nothing was posted or claimed.
    let c = common::connect(&env.url).await;
    assert_eq!(common::count_status(&c, "processing").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_accepts_a_session_pooler() {
    let env = common::full_env().await;
    let bouncer = PgBouncer::start(env.h.pg().port(), "session", 4).await;
    let url = bouncer.url();

    let (_, out) = run(&env, &url, &["doctor"]).await;
    assert!(
        out.contains("session (direct or session pooler): ok"),
        "{out}"
    );
    assert!(!out.contains("no sync_queue table"), "{out}");
    assert!(!out.contains("transaction pooler"), "{out}");
}

/// A worker behind a session pooler posts as on a direct connection, woken by LISTEN/NOTIFY
/// through the pooler (the safety-net poll is an hour away). A session pooler gives each client
/// connection a server connection for its whole life, so its pool must hold the worker's pool
/// plus the listener and the completer (`MIKRO_SYNC_PG_POOL_SIZE` + 2).
#[tokio::test(flavor = "multi_thread")]
async fn worker_posts_through_a_session_pooler_woken_by_listen() {
    let env = common::full_env().await;
    const POOL: u32 = 4;
    let bouncer = PgBouncer::start(env.h.pg().port(), "session", POOL + 2).await;
    let url = bouncer.url();
    let dir = tempfile::tempdir().unwrap();
    let log = |f: &str| std::fs::File::create(dir.path().join(f)).unwrap();
    let mut worker = command(&env, &url, dir.path(), &["worker"])
        .env("MIKRO_SYNC_PG_POOL_SIZE", POOL.to_string())
        .env("MIKRO_SYNC_POLL_INTERVAL", "1h")
        .env("MIKRO_SYNC_ERP_SYNC_INTERVAL", "off")
        .stdout(log("stdout"))
        .stderr(log("stderr"))
        .spawn()
        .expect("spawn worker");
    let logs = || {
        format!(
            "{}{}",
            std::fs::read_to_string(dir.path().join("stdout")).unwrap_or_default(),
            std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default()
        )
    };

    // Its listener, seen from the server side (PgBouncer passes the application_name on).
    let c = common::connect(&env.url).await;
    let t0 = Instant::now();
    loop {
        if let Ok(Some(status)) = worker.try_wait() {
            panic!("worker exited with {status}: {}", logs());
        }
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = 'web' \
                 AND application_name = 'mikro-sync listener'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n == 1 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no listener behind the pooler within 60 s: {}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Documents written by the shop (directly), posted by the worker behind the pooler.
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(if i % 4 == 3 {
            common::insert_collection(&c, "75.50").await
        } else {
            common::insert_sale(&c, 2).await
        });
    }
    let t0 = Instant::now();
    while common::count_status(&c, "completed").await < ids.len() as i64 {
        if let Ok(Some(status)) = worker.try_wait() {
            panic!("worker exited with {status}: {}", logs());
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "documents not completed through the session pooler within 90 s: {}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (id, ledger, cha) in common::erp_postings(&env, &ids).await {
        assert_eq!((ledger, cha), (1, 1), "document {id} in Mikro exactly once");
    }
    let text = logs();
    assert!(!text.contains("transaction-mode pooler"), "{text}");
    assert!(!text.contains("prepared statement"), "{text}");

    // SIGTERM: a clean stop behind the pooler too.
    let pid = worker.id().expect("worker pid");
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), worker.wait())
        .await
        .expect("worker stops within 60 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}: {}", logs());
}
