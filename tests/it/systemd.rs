//! The systemd unit is valid (`systemd-analyze verify`) and has what the daemon relies on.

use std::process::Command;

const UNIT: &str = include_str!("../../systemd/mikro-sync.service");

#[test]
fn unit_declares_notify_watchdog_and_hardening() {
    for needle in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "EnvironmentFile=/etc/mikro-sync/mikro-sync.env",
        "User=mikro-sync",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ExecStart=/usr/local/bin/mikro-sync worker",
    ] {
        assert!(UNIT.contains(needle), "unit lacks {needle}");
    }
}

#[test]
fn unit_verifies_with_systemd_analyze() {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("SKIPPED: systemd-analyze is not installed (apt-get install systemd)");
        return;
    };
    assert!(out.status.success());
    // verify checks that ExecStart exists: point it at the binary this test suite built, in a
    // copy of the unit (same name, so the file-name checks are the real ones).
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_mikro-sync");
    let unit = UNIT.replace("/usr/local/bin/mikro-sync", bin);
    let path = dir.path().join("mikro-sync.service");
    std::fs::write(&path, unit).expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Lines about *other* units on this machine (no running systemd in a container) are not ours.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("mikro-sync.service"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify failed (status {:?}):\n{stderr}",
        out.status.code()
    );
}
