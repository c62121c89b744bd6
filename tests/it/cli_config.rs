//! `mikro-sync config`, `--help` everywhere, `.env` and `--config` handling, exit codes — through
//! the binary, as an operator meets them.

use std::process::Command;

fn run(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mikro-sync"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .expect("run mikro-sync");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn help_in_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let (code, top) = run(dir.path(), &["--help"], &[]);
    assert_eq!(code, 0, "{top}");
    // `demo` exists only in builds with the `demo` feature (the README's test command enables it).
    let demo: &[&str] = if cfg!(feature = "demo") {
        &["demo"]
    } else {
        &[]
    };
    let subs = [
        "setup",
        "worker",
        "sync",
        "sync-bidirectional",
        "status",
        "retry-failed",
        "doctor",
        "config",
    ];
    for &sub in subs.iter().chain(demo) {
        assert!(top.contains(sub), "top-level help lists {sub}");
        let (code, text) = run(dir.path(), &[sub, "--help"], &[]);
        assert_eq!(code, 0, "{sub} --help: {text}");
        assert!(text.contains("Usage: mikro-sync"), "{sub}: {text}");
        assert!(
            text.lines().next().is_some_and(|l| l.len() > 20),
            "{sub} has a description: {text}"
        );
    }
}

#[test]
fn dotenv_is_read_and_secrets_are_masked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "PG_HOST=db.example.com\nPG_DATABASE=shop\nPG_USER=app\nPG_PASSWORD=dotenv-Secret-1\nPG_SSL=true\n\
         MSSQL_SERVER=10.0.0.5\nMSSQL_DATABASE=MikroDB_V16\nMSSQL_USER=sync\nMSSQL_PASSWORD=ms-Secret-2\n",
    )
    .unwrap();
    // The environment overrides .env.
    let (code, text) = run(dir.path(), &["config"], &[("PG_PORT", "6543")]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("postgres://app:***@db.example.com:6543/shop (sslmode=require, verify=true)"),
        "{text}"
    );
    assert!(text.contains("mssql://sync:***@10.0.0.5:1433/MikroDB_V16 (encrypt=true, trust_server_certificate=false)"), "{text}");
    assert!(
        !text.contains("dotenv-Secret-1") && !text.contains("ms-Secret-2"),
        "{text}"
    );
    let (code, list) = run(dir.path(), &["config", "--list"], &[]);
    assert_eq!(code, 0);
    assert!(
        list.contains("MIKRO_SYNC_METRICS_LISTEN") && list.contains("PG_SSL_INSECURE_SKIP_VERIFY"),
        "{list}"
    );
}

#[test]
fn bad_values_exit_2_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = run(
        dir.path(),
        &["config"],
        &[
            ("MSSQL_PORT", "14x3"),
            ("MIKRO_SYNC_TIMEZONE", "Europe/Istambul"),
        ],
    );
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("MSSQL_PORT: `14x3`"), "{text}");
    assert!(
        text.contains("MIKRO_SYNC_TIMEZONE: `Europe/Istambul`"),
        "{text}"
    );
    // A command that needs a database that is not configured says which variables to set.
    let (code, text) = run(dir.path(), &["status"], &[]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("MIKRO_SYNC_PG_URL") && text.contains("PG_HOST"),
        "{text}"
    );
}

#[test]
fn toml_file_with_env_override_and_typo_detection() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mikro-sync.toml");
    std::fs::write(
        &file,
        "[pg]\nhost = \"toml-host\"\ndatabase = \"web\"\nuser = \"u\"\n[mikro_sync]\npoll_interval = \"2s\"\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let (code, text) = run(
        dir.path(),
        &["--config", f, "config"],
        &[("PG_HOST", "env-host")],
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("@env-host:5432/web"),
        "environment wins over the file: {text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("MIKRO_SYNC_POLL_INTERVAL") && l.ends_with("2s")),
        "{text}"
    );
    std::fs::write(&file, "[mikro_sync]\npol_interval = \"2s\"\n").unwrap();
    let (code, text) = run(dir.path(), &["--config", f, "config"], &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("MIKRO_SYNC_POL_INTERVAL"), "{text}");
}
