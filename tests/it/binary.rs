//! The `auditgate` binary itself: exit codes, messages, signals.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

fn auditgate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_auditgate"));
    cmd.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

#[test]
fn a_bad_config_file_exits_64_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auditgate.toml");
    std::fs::write(&file, "upstream = \"http://127.0.0.1:9\"\n\n[limits]\nmax_body_byte = 5\n").unwrap();
    let out = auditgate().args(["serve", "--config"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:4:", file.display())), "{err}");
    assert!(err.contains("max_body_byte"), "{err}");
}

#[test]
fn a_bad_rules_file_exits_64_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("resources.toml"), "[[resource]]\npattern = \"/x/{id}\"\n").unwrap();
    let out = auditgate()
        .args([
            "serve",
            "--upstream",
            "http://127.0.0.1:9",
            "--listen",
            "127.0.0.1:0",
            "--query-listen",
            "127.0.0.1:0",
            "--rules",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("resources.toml:1:") && err.contains("gives no type"), "{err}");
}

#[test]
fn serve_without_upstream_says_how_to_give_one() {
    let out = auditgate().args(["serve", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--upstream"));
}

#[test]
fn explain_prints_the_inference() {
    let out = auditgate()
        .args(["explain", "--rules", "rules", "POST", "/api/users/5/activate/"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("action    activate"), "{text}");
    assert!(text.contains("type      user"), "{text}");
    assert!(text.contains("snapshot  /api/users/5/"), "{text}");
    let ignored = auditgate()
        .args(["explain", "--rules", "rules", "GET", "/static/app.js"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&ignored.stdout);
    assert!(text.contains("ignored") && text.contains("resources.toml:"), "{text}");
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_0() {
    let upstream = spawn_upstream();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("audit.db").display());
    let mut child = auditgate()
        .args(["serve", "--listen", "127.0.0.1:0", "--rules", "/nonexistent-rules-dir", "--upstream", &upstream.url()])
        .args(["--database", &database, "--query-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The log line names the bound address.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    while addr.is_none() && stderr.read_line(&mut line).unwrap() > 0 {
        addr = line.split("addr=").nth(1).map(|a| a.split_whitespace().next().unwrap().to_string());
        line.clear();
    }
    let addr = addr.expect("the proxy logs its address");
    let url = format!("http://{addr}/slow?ms=800");
    let in_flight = tokio::spawn(async move { get(&url).await });
    tokio::time::sleep(Duration::from_millis(250)).await;
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let res = in_flight.await.unwrap();
    assert_eq!((res.status().as_u16(), res.body().as_ref()), (200, &b"slow"[..]));
    let started = Instant::now();
    let code = loop {
        if let Some(code) = child.try_wait().unwrap() {
            break code;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(code.code(), Some(0));
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("SIGTERM received"), "{rest}");
}
