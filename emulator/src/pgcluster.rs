//! A throwaway PostgreSQL cluster (initdb in a temp dir, free port, gone on drop).
//!
//! Why: every test of mikro-sync and of the emulator needs a real PostgreSQL (no mocks), and it
//! must not depend on a server someone happens to run. [`PgCluster`] starts a private postmaster
//! on a free port of 127.0.0.1 with a unix socket in its own temp dir, tuned for speed
//! (`fsync=off`, `synchronous_commit=off`, `full_page_writes=off`, autovacuum every second so
//! statistics follow fast-growing tables), and stops it and removes
//! every file when dropped — also when the test panics (Drop runs during unwinding).
//!
//! Speed: `initdb` takes about a second, so it runs once per PostgreSQL version into a template
//! directory under the system temp dir (shared between processes, created atomically by rename)
//! and each cluster starts from a copy of it.
//!
//! Root: `postgres` refuses to run as root, so as root the data directory is owned by the
//! `postgres` user and initdb/postgres run through `setpriv` (or `runuser`) as that user.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Errors starting or using a throwaway cluster. The messages say what to do about them.
#[derive(Debug, thiserror::Error)]
pub enum PgClusterError {
    /// No PostgreSQL server binaries (initdb, postgres) were found.
    #[error(
        "PostgreSQL server binaries (initdb, postgres) not found: set PG_BIN to their directory, \
         or install them (Debian/Ubuntu: `apt-get install postgresql`); looked in {0}"
    )]
    BinariesNotFound(String),
    /// Running as root but there is no unprivileged user to run postgres as.
    #[error(
        "running as root, but user `postgres` does not exist to run the server as \
         (Debian: `apt-get install postgresql` creates it)"
    )]
    NoPostgresUser,
    /// A file-system or process-spawn failure.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// `initdb` failed; its output is included.
    #[error("initdb failed: {0}")]
    Initdb(String),
    /// The postmaster did not come up; the tail of its log is included.
    #[error("PostgreSQL did not start: {0}")]
    Start(String),
    /// A SQL command on the fresh cluster failed.
    #[error("PostgreSQL command failed: {0}")]
    Sql(String),
    /// Certificate generation for the TLS option failed.
    #[error("TLS certificate generation failed: {0}")]
    Tls(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PgClusterError {
    let what = what.into();
    move |source| PgClusterError::Io { what, source }
}

/// Options for [`PgCluster::start_with`].
#[derive(Debug, Clone, Default)]
pub struct PgClusterOptions {
    /// Enable TLS (`ssl=on`) with a freshly generated self-signed certificate for
    /// `localhost`/`127.0.0.1`; see [`PgCluster::ca_cert_pem`]. Plaintext stays allowed.
    pub tls: bool,
    /// Extra `-c name=value` server settings (e.g. `("log_statement", "all")`).
    pub settings: Vec<(String, String)>,
}

/// A running throwaway PostgreSQL cluster. Superuser `postgres`, trust authentication, UTF8,
/// locale C.UTF-8. Dropping it stops the server (immediate shutdown) and deletes its files.
#[derive(Debug)]
pub struct PgCluster {
    port: u16,
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    ca_pem: Option<String>,
}

/// The located PostgreSQL installation (bin dir and a version key for the template cache).
#[derive(Debug, Clone)]
struct PgInstall {
    bin: PathBuf,
    version_key: String,
}

fn is_root() -> bool {
    // `id -u` avoids a libc dependency; the answer is cached by the caller.
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn root_cached() -> bool {
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOT.get_or_init(is_root)
}

fn has_server_bins(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

fn find_bin_dir() -> Result<PathBuf, PgClusterError> {
    let mut looked = Vec::new();
    if let Ok(p) = std::env::var("PG_BIN") {
        let p = PathBuf::from(p);
        if has_server_bins(&p) {
            return Ok(p);
        }
        looked.push(format!("PG_BIN={}", p.display()));
    }
    // Newest /usr/lib/postgresql/<ver>/bin.
    let base = Path::new("/usr/lib/postgresql");
    looked.push(format!("{}/*/bin", base.display()));
    if let Ok(rd) = std::fs::read_dir(base) {
        let mut versions: Vec<(Vec<u32>, PathBuf)> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let ver: Vec<u32> = name.split('.').filter_map(|s| s.parse().ok()).collect();
                let bin = e.path().join("bin");
                (!ver.is_empty() && has_server_bins(&bin)).then_some((ver, bin))
            })
            .collect();
        versions.sort();
        if let Some((_, bin)) = versions.pop() {
            return Ok(bin);
        }
    }
    // PATH (following symlinks so `postgres` is found next to the real initdb).
    looked.push("PATH".into());
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.is_file() {
                let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
                if let Some(parent) = real.parent() {
                    if has_server_bins(parent) {
                        return Ok(parent.to_path_buf());
                    }
                }
                if has_server_bins(&dir) {
                    return Ok(dir);
                }
            }
        }
    }
    Err(PgClusterError::BinariesNotFound(looked.join(", ")))
}

fn locate() -> Result<PgInstall, PgClusterError> {
    static INSTALL: Mutex<Option<PgInstall>> = Mutex::new(None);
    let mut guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = guard.as_ref() {
        return Ok(i.clone());
    }
    let bin = find_bin_dir()?;
    let out = Command::new(bin.join("postgres"))
        .arg("-V")
        .output()
        .map_err(io_err(format!("running {}/postgres -V", bin.display())))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let version_key: String = version
        .rsplit(' ')
        .next()
        .unwrap_or("unknown")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let install = PgInstall { bin, version_key };
    *guard = Some(install.clone());
    Ok(install)
}

/// Builds a command that runs `program` as the unprivileged `postgres` user when we are root.
/// `setpriv` execs in place (so the child's pid is the program's pid, which lets Drop signal the
/// postmaster directly); `runuser` is the fallback.
fn as_db_user(program: &Path) -> Result<Command, PgClusterError> {
    if !root_cached() {
        return Ok(Command::new(program));
    }
    let ok = Command::new("id")
        .arg("postgres")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        return Err(PgClusterError::NoPostgresUser);
    }
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .iter()
        .find(|p| Path::new(p).is_file());
    let mut cmd = if let Some(sp) = setpriv {
        let mut c = Command::new(sp);
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]);
        c
    } else {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]);
        c
    };
    cmd.arg(program);
    // HOME of root is not readable for postgres; keep the server from looking there.
    cmd.env("HOME", std::env::temp_dir());
    Ok(cmd)
}

fn chown_to_db_user(path: &Path) -> Result<(), PgClusterError> {
    if !root_cached() {
        return Ok(());
    }
    let st = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(path)
        .status()
        .map_err(io_err("running chown"))?;
    if !st.success() {
        return Err(PgClusterError::Io {
            what: format!("chown postgres {}", path.display()),
            source: std::io::Error::other("chown failed"),
        });
    }
    Ok(())
}

/// Returns the template data directory for this PostgreSQL version, running initdb the first
/// time (per machine; concurrent creators race harmlessly through an atomic rename).
fn template_dir(install: &PgInstall) -> Result<PathBuf, PgClusterError> {
    static TEMPLATE: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut guard = TEMPLATE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(t) = guard.as_ref() {
        if t.join("PG_VERSION").is_file() {
            return Ok(t.clone());
        }
    }
    let user = if root_cached() {
        "root".to_string()
    } else {
        std::env::var("USER").unwrap_or_else(|_| "user".into())
    };
    let final_dir = std::env::temp_dir().join(format!(
        "mikro-pgcluster-template-{}-{}",
        install.version_key, user
    ));
    let data = final_dir.join("data");
    if !data.join("PG_VERSION").is_file() {
        let staging = tempfile::Builder::new()
            .prefix("mikro-pgcluster-initdb-")
            .tempdir()
            .map_err(io_err("creating initdb staging dir"))?;
        let staging_data = staging.path().join("data");
        chown_to_db_user(staging.path())?;
        run_initdb(install, &staging_data, "C.UTF-8").or_else(|first| {
            // Machines without the C.UTF-8 locale: fall back to C with UTF8 encoding.
            let _ = std::fs::remove_dir_all(&staging_data);
            run_initdb(install, &staging_data, "C").map_err(|_| first)
        })?;
        let staging_path = staging.keep();
        if std::fs::rename(&staging_path, &final_dir).is_err() {
            // Someone else won the race (or a stale dir is in the way).
            let _ = std::fs::remove_dir_all(&staging_path);
            if !data.join("PG_VERSION").is_file() {
                let _ = std::fs::remove_dir_all(&final_dir);
                return Err(PgClusterError::Initdb(format!(
                    "template dir {} is unusable; removed it, retry",
                    final_dir.display()
                )));
            }
        }
    }
    *guard = Some(data.clone());
    Ok(data)
}

fn run_initdb(install: &PgInstall, data: &Path, locale: &str) -> Result<(), PgClusterError> {
    let out = as_db_user(&install.bin.join("initdb"))?
        .arg("-D")
        .arg(data)
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            &format!("--locale={locale}"),
            "--no-sync",
            "--no-instructions",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(io_err("running initdb"))?;
    if !out.status.success() {
        return Err(PgClusterError::Initdb(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// `sh -c` script: `$1` is the cluster dir, the rest is the postgres command line. The
/// background subshell waits for EOF on the parent's pipe (fd 3, because asynchronous lists get
/// /dev/null as stdin), then stops the server and removes the directory.
const WATCHDOG: &str = r#"dir=$1; shift
exec 3<&0
"$@" </dev/null &
pid=$!
( trap '' HUP INT TERM; read -r _ <&3; kill -QUIT "$pid" 2>/dev/null; sleep 3; rm -rf "$dir" ) &
exec 3<&-
wait "$pid"
"#;

fn free_port() -> Result<u16, PgClusterError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(io_err("finding a free port"))?;
    let port = l
        .local_addr()
        .map_err(io_err("reading the free port"))?
        .port();
    Ok(port)
}

fn tail(path: &Path, max: usize) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    let start = s.len().saturating_sub(max);
    let start = (start..s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    s[start..].to_string()
}

fn write_tls_files(dir: &Path) -> Result<String, PgClusterError> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".into()])
        .map_err(|e| PgClusterError::Tls(e.to_string()))?;
    let cert = ck.cert.pem();
    let key = ck.signing_key.serialize_pem();
    let crt_path = dir.join("server.crt");
    let key_path = dir.join("server.key");
    std::fs::write(&crt_path, &cert).map_err(io_err("writing server.crt"))?;
    std::fs::write(&key_path, key).map_err(io_err("writing server.key"))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err("chmod server.key"))?;
    Ok(cert)
}

impl PgCluster {
    /// Starts a cluster with default options (no TLS).
    pub async fn start() -> Result<PgCluster, PgClusterError> {
        Self::start_with(PgClusterOptions::default()).await
    }

    /// Starts a cluster with the given options; returns once it accepts connections.
    pub async fn start_with(opts: PgClusterOptions) -> Result<PgCluster, PgClusterError> {
        let mut last = None;
        for _ in 0..4 {
            let o = opts.clone();
            let spawned = tokio::task::spawn_blocking(move || Self::spawn(o))
                .await
                .map_err(|e| PgClusterError::Start(format!("start task failed: {e}")))?;
            let mut cluster = spawned?;
            match cluster.wait_ready().await {
                Ok(()) => return Ok(cluster),
                Err(e) => {
                    // Most likely the free port was taken in between: retry on another one.
                    last = Some(e);
                    drop(cluster);
                }
            }
        }
        Err(last.unwrap_or_else(|| PgClusterError::Start("unknown failure".into())))
    }

    /// Blocking variant of [`PgCluster::start`] for synchronous tests and tools. Works inside
    /// or outside a tokio runtime (it runs its own on a helper thread).
    pub fn start_blocking(opts: PgClusterOptions) -> Result<PgCluster, PgClusterError> {
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(io_err("building a tokio runtime"))?;
            rt.block_on(Self::start_with(opts))
        })
        .join()
        .map_err(|_| PgClusterError::Start("start thread panicked".into()))?
    }

    fn spawn(opts: PgClusterOptions) -> Result<PgCluster, PgClusterError> {
        let install = locate()?;
        let template = template_dir(&install)?;
        let dir = tempfile::Builder::new()
            .prefix("mikro-pgcluster-")
            .tempdir()
            .map_err(io_err("creating the cluster temp dir"))?;
        let data = dir.path().join("data");
        let st = Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(&data)
            .status()
            .map_err(io_err("copying the template data dir"))?;
        if !st.success() {
            return Err(PgClusterError::Io {
                what: format!("cp -a {} {}", template.display(), data.display()),
                source: std::io::Error::other("cp failed"),
            });
        }
        let ca_pem = if opts.tls {
            Some(write_tls_files(dir.path())?)
        } else {
            None
        };
        chown_to_db_user(dir.path())?;
        let port = free_port()?;
        let log_path = dir.path().join("postgres.log");
        let log = std::fs::File::create(&log_path).map_err(io_err("creating postgres.log"))?;
        let log2 = log.try_clone().map_err(io_err("cloning the log handle"))?;
        let mut cmd = as_db_user(&install.bin.join("postgres"))?;
        cmd.arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(dir.path())
            .args(["-h", "127.0.0.1"]);
        let mut settings: Vec<(String, String)> = [
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("full_page_writes", "off"),
            ("max_connections", "200"),
            ("shared_buffers", "32MB"),
            ("max_locks_per_transaction", "256"),
            ("log_min_messages", "warning"),
            // Tables here start empty and grow by thousands of rows within seconds (tests,
            // benchmarks). With the default 1 min naptime the statistics still say "empty" a
            // minute later, and `MAX(x) … WHERE <index prefix>` is planned as a scan of every
            // matching row instead of one backward index probe: the emulator's numbering query
            // took 20 ms at 2,000 rows of one series. Analyze as soon as a table has grown.
            ("autovacuum_naptime", "1s"),
            // … but not so often that autovacuum competes with the work measured: analyze
            // after +50 % rows (statistics never more than 1.5x behind, enough for the plan
            // choice above; ANALYZE of Mikro's 120-140-column tables was ~5 % of all CPU in the
            // documents/s benchmark at +20 %), vacuum after 50 % dead rows, no vacuum for
            // inserts alone. Documents/s (4 series), interleaved runs: 495, 526 at 0.2; 563,
            // 572, 516 at 0.5.
            ("autovacuum_analyze_scale_factor", "0.5"),
            ("autovacuum_vacuum_scale_factor", "0.5"),
            ("autovacuum_vacuum_insert_threshold", "-1"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        if opts.tls {
            settings.push(("ssl".into(), "on".into()));
            settings.push((
                "ssl_cert_file".into(),
                dir.path().join("server.crt").display().to_string(),
            ));
            settings.push((
                "ssl_key_file".into(),
                dir.path().join("server.key").display().to_string(),
            ));
        }
        settings.extend(opts.settings.iter().cloned());
        for (k, v) in &settings {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        // Run the postmaster under a tiny shell watchdog that holds our stdin pipe: if this
        // process dies without running Drop (SIGKILL, a test timeout), the pipe closes and the
        // watchdog shuts the server down and removes its directory, so nothing is leaked. Its
        // cleanup part ignores HUP/INT/TERM: `timeout` or a Ctrl-C signals the whole process
        // group, and a cleanup that died with it left the stopped cluster's files in /tmp.
        let mut watched = Command::new("sh");
        watched
            .arg("-c")
            .arg(WATCHDOG)
            .arg("sh")
            .arg(dir.path())
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            if let Some(v) = v {
                watched.env(k, v);
            }
        }
        let child = watched
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(io_err("spawning postgres"))?;
        Ok(PgCluster {
            port,
            dir: Some(dir),
            child: Some(child),
            ca_pem,
        })
    }

    async fn wait_ready(&mut self) -> Result<(), PgClusterError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = self.url("postgres");
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(PgClusterError::Start(format!(
                        "postgres exited ({status}); log:\n{}",
                        tail(&self.log_path(), 3000)
                    )));
                }
            }
            match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                Ok((client, conn)) => {
                    let h = tokio::spawn(conn);
                    let r = client.simple_query("SELECT 1").await;
                    drop(client);
                    let _ = h.await;
                    if r.is_ok() {
                        return Ok(());
                    }
                }
                Err(_) if Instant::now() < deadline => {}
                Err(e) => {
                    return Err(PgClusterError::Start(format!(
                        "not ready after 30 s ({e}); log:\n{}",
                        tail(&self.log_path(), 3000)
                    )))
                }
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir
            .as_ref()
            .map(|d| d.path().join("postgres.log"))
            .unwrap_or_default()
    }

    /// The TCP port the cluster listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host the cluster listens on.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The directory holding the unix socket (`.s.PGSQL.<port>`), for `host=<dir>` URLs.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_default()
    }

    /// A `postgres://` URL (TCP, user `postgres`, no password) for database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, db)
    }

    /// A key=value connection string for database `db` (tokio-postgres / libpq format).
    pub fn conn_string(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={}",
            self.port, db
        )
    }

    /// The PEM certificate the server presents when started with `tls: true` (self-signed, so it
    /// is also the CA a client must trust); `None` without TLS.
    pub fn ca_cert_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The postgres server log so far (useful in assertion messages).
    pub fn log(&self) -> String {
        tail(&self.log_path(), 64 * 1024)
    }

    /// Creates database `name` (UTF8, from template0 so it is empty and collation-independent).
    pub async fn create_database(&self, name: &str) -> Result<(), PgClusterError> {
        self.execute(
            "postgres",
            &format!(
                "CREATE DATABASE \"{}\" TEMPLATE template0 ENCODING 'UTF8'",
                name.replace('"', "\"\"")
            ),
        )
        .await
    }

    /// Runs a SQL script (simple-query protocol, several statements allowed) in database `db`.
    pub async fn execute(&self, db: &str, sql: &str) -> Result<(), PgClusterError> {
        let (client, conn) = tokio_postgres::connect(&self.url(db), tokio_postgres::NoTls)
            .await
            .map_err(|e| PgClusterError::Sql(format!("connect to {db}: {e}")))?;
        let h = tokio::spawn(conn);
        let r = client
            .batch_execute(sql)
            .await
            .map_err(|e| PgClusterError::Sql(format!("{e} ({:?})", e.as_db_error())));
        drop(client);
        let _ = h.await;
        r
    }

    /// Stops the server now (immediate shutdown) and removes its files. Drop does the same.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The postmaster pid is in postmaster.pid (the child may be a runuser wrapper).
            let pidfile = self
                .dir
                .as_ref()
                .map(|d| d.path().join("data").join("postmaster.pid"));
            let mut pids = vec![child.id().to_string()];
            if let Some(pf) = pidfile {
                if let Ok(s) = std::fs::read_to_string(pf) {
                    if let Some(first) = s.lines().next() {
                        pids.insert(0, first.trim().to_string());
                    }
                }
            }
            let _ = Command::new("kill")
                .arg("-QUIT")
                .args(&pids)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_creates_database_and_cleans_up() {
        let t0 = Instant::now();
        let c = PgCluster::start().await.expect("start");
        eprintln!("PgCluster started in {:?}", t0.elapsed());
        c.create_database("web").await.expect("create db");
        let (client, conn) = tokio_postgres::connect(&c.url("web"), tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        let row = client
            .query_one(
                "SELECT current_setting('server_encoding'), 'ğüşıöçİ'::text",
                &[],
            )
            .await
            .expect("query");
        assert_eq!(row.get::<_, String>(0), "UTF8");
        assert_eq!(row.get::<_, String>(1), "ğüşıöçİ");
        // Statistics follow fast-growing tables (see the settings in `spawn`).
        let row = client
            .query_one("SHOW autovacuum_naptime", &[])
            .await
            .expect("show");
        assert_eq!(row.get::<_, String>(0), "1s");
        let dir = c.socket_dir();
        assert!(dir.join(format!(".s.PGSQL.{}", c.port())).exists());
        drop(client);
        drop(c);
        assert!(!dir.exists(), "temp dir must be removed on drop");
    }

    #[test]
    fn blocking_start_with_tls() {
        let c = PgCluster::start_blocking(PgClusterOptions {
            tls: true,
            ..Default::default()
        })
        .expect("start");
        assert!(c.ca_cert_pem().unwrap_or("").contains("BEGIN CERTIFICATE"));
        let rt = tokio::runtime::Runtime::new().expect("rt");
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&c.url("postgres"), tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            let row = client.query_one("SHOW ssl", &[]).await.expect("show");
            assert_eq!(row.get::<_, String>(0), "on");
        });
    }
}
