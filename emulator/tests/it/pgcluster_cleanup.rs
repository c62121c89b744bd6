//! A process that dies together with its process group (`timeout`, Ctrl-C) without running
//! `Drop` still leaves no throwaway cluster behind: the watchdog stops the server and removes
//! its directory.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mikro_emulator::pgcluster::PgCluster;

const CHILD_ENV: &str = "PGCLUSTER_CLEANUP_CHILD";

/// The child side: starts a cluster, says where it lives, and waits to be killed.
#[test]
fn child_entry() {
    let Ok(out) = std::env::var(CHILD_ENV) else {
        return; // only runs as the child of the test below
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let c = PgCluster::start().await.expect("start");
        std::fs::write(&out, c.socket_dir().display().to_string()).expect("write");
        tokio::time::sleep(Duration::from_secs(120)).await;
        drop(c);
    });
}

#[test]
fn sigterm_to_the_process_group_removes_the_cluster_dir() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("cluster-dir");
    let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["pgcluster_cleanup::child_entry", "--exact", "--nocapture"])
        .env(CHILD_ENV, &out)
        .process_group(0)
        .spawn()
        .expect("spawn child");
    let t0 = Instant::now();
    let dir = loop {
        if let Ok(s) = std::fs::read_to_string(&out) {
            if !s.is_empty() {
                break PathBuf::from(s);
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the child never started its cluster"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        dir.exists(),
        "{} exists while the child runs",
        dir.display()
    );
    // What `timeout` and a terminal's Ctrl-C do: signal the whole process group.
    let st = std::process::Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", child.id())])
        .status()
        .expect("kill");
    assert!(st.success());
    let _ = child.wait();
    let t0 = Instant::now();
    while dir.exists() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !dir.exists(),
        "{} left behind after the process group got SIGTERM",
        dir.display()
    );
}
