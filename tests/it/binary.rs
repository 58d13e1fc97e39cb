//! The `auditgate` binary itself: exit codes, messages, signals.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use auditgate::store::Store;

use crate::helpers::*;

/// The proxy address a started `auditgate serve` logs (`RUST_LOG=info`),
/// and the rest of its log.
pub(crate) fn logged_addr(
    child: &mut std::process::Child,
) -> (std::net::SocketAddr, BufReader<std::process::ChildStderr>) {
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        if let Some(addr) = line.split("addr=").nth(1).map(|a| a.split_whitespace().next().unwrap().to_string()) {
            return (addr.parse().unwrap(), stderr);
        }
        line.clear();
    }
    panic!("the proxy never logged its address");
}

pub(crate) fn auditgate() -> Command {
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
    // A wrong type names the key as well as the line.
    std::fs::write(&file, "upstream = \"http://127.0.0.1:9\"\nlisten = 2\n").unwrap();
    let out = auditgate().args(["serve", "--config"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:2: listen: invalid type: integer", file.display())), "{err}");
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
fn a_bad_seed_file_exits_64_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("audit.toml"), "[[configuration]]\nname = \"x\"\naudit_actions = [\"explode\"]\n")
        .unwrap();
    let out = auditgate()
        .args(["serve", "--upstream", "http://127.0.0.1:9", "--listen", "127.0.0.1:0", "--rules"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("audit.toml:3: audit_actions:") && err.contains("explode"), "{err}");
}

#[tokio::test]
async fn explain_names_the_deciding_configuration_from_the_seed_file_or_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let audit = "[[configuration]]\nname = \"Users\"\naudit_resource_types = [\"user\"]\ncapture = \"metadata\"\n";
    std::fs::write(dir.path().join("audit.toml"), audit).unwrap();
    let run = |extra: &[&str], method: &str, path: &str| {
        let out =
            auditgate().args(["explain", "--rules"]).arg(dir.path()).args(extra).args([method, path]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = run(&["-H", "Authorization: Basic YWxpY2U6cHc="], "PATCH", "/api/v1/users/7/");
    assert!(text.contains("actor     alice (basic, unverified)"), "{text}");
    assert!(text.contains("audited   yes, by `Users` (capture metadata)"), "{text}");
    assert!(text.contains("audit.toml"), "{text}");
    let text = run(&[], "PATCH", "/api/v1/orders/7/");
    assert!(text.contains("audited   no (no include configuration matches)"), "{text}");
    // An empty database has no configurations: every mutation is audited.
    let db_dir = tempfile::tempdir().unwrap();
    let database = test_database(db_dir.path()).await;
    let text = run(&["--database", &database], "PATCH", "/api/v1/orders/7/");
    assert!(text.contains("audited   yes (no include configuration is active"), "{text}");
    assert!(text.contains(&format!("0 active configuration(s) in {database}")), "{text}");
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
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream", &upstream.url()])
        .arg("--rules")
        .arg(dir.path())
        .args(["--database", &database, "--query-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (addr, mut stderr) = logged_addr(&mut child);
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

/// The proxy's and the query port's URLs a started demo prints, and the
/// rest of its output, to hold open while it runs (a closed pipe would
/// fail its next line).
fn demo_addresses(child: &mut std::process::Child) -> (String, String, BufReader<std::process::ChildStdout>) {
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut proxy, mut query) = (None, None);
    let mut line = String::new();
    while query.is_none() && stdout.read_line(&mut line).unwrap() > 0 {
        if line.trim_start().starts_with("proxy") {
            proxy = line.split_whitespace().nth(1).map(str::to_string);
        } else if line.trim_start().starts_with("query port") {
            query = line.split_whitespace().nth(2).map(str::to_string);
        }
        line.clear();
    }
    (proxy.expect("demo prints the proxy"), query.expect("demo prints the query port"), stdout)
}

#[tokio::test]
async fn demo_shows_the_trail_and_verify_catches_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(dir.path()).await;
    let mut child = auditgate()
        .args(["demo", "--listen", "127.0.0.1:0", "--query-listen", "127.0.0.1:0", "--database", &database])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (proxy, query, mut stdout) = demo_addresses(&mut child);
    let create = http::Request::post(format!("{proxy}/api/v1/users/"))
        .header("authorization", "Basic YWxpY2U6cHc=")
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(br#"{"name": "Alice"}"#)))
        .unwrap();
    assert_eq!(send(&client(), create).await.status(), 201);
    let started = Instant::now();
    let entries = loop {
        let body: serde_json::Value =
            serde_json::from_slice(get(&format!("{query}/api/v1/audit-logs")).await.body()).unwrap();
        if !body["items"].as_array().unwrap().is_empty() {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no entry appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(entries["items"][0]["resource_type"], "user");
    assert_eq!(entries["items"][0]["actor"], "alice");
    let id = entries["items"][0]["id"].as_str().unwrap().to_string();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("the trail you named keeps earlier runs' entries"), "a named database: {rest}");

    let ok = auditgate().args(["verify", "--database", &database]).output().unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("\"ok\":true"));
    // Edit the stored entry behind auditgate's back.
    let store = Store::open(&database, false).await.unwrap();
    execute(&store, "UPDATE audit_log SET entry = replace(entry, 'alice', 'mallory')", &[]).await;
    store.close().await;
    let bad = auditgate().args(["verify", "--database", &database]).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains(&format!("TAMPERED: entry {id}")),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn migrate_creates_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fresh.db");
    let out = auditgate().args(["migrate", "--database"]).arg(format!("sqlite://{}", file.display())).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(file.exists());
    let again =
        auditgate().args(["migrate", "--database"]).arg(format!("sqlite://{}", file.display())).output().unwrap();
    assert!(again.status.success());
    let bad = auditgate().args(["migrate", "--database", "mysql://nope"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    // The page cache set in the URL; a value that is not one is refused.
    let sized = format!("sqlite://{}?cache_mib=8&mmap_mib=0", file.display());
    let out = auditgate().args(["migrate", "--database", &sized]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bad = format!("sqlite://{}?cache_mib=-1", file.display());
    let out = auditgate().args(["migrate", "--database", &bad]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("`cache_mib` must be a whole number of MiB under 1048576, not `-1`"), "{said}");
}

/// `migrate` and `verify` on the test database (PostgreSQL in the suite's
/// second run): the schema made, made again without harm, and verified.
#[tokio::test]
async fn migrate_and_verify_work_on_the_test_database() {
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(dir.path()).await;
    for _ in 0..2 {
        let out = auditgate().args(["migrate", "--database", &database]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = auditgate().args(["verify", "--database", &database]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 entries checked"));
}

#[tokio::test]
async fn b12_out_of_file_descriptors_the_accept_loop_backs_off_and_serves_again() {
    let upstream = spawn_upstream();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("audit.db").display());
    // 64 descriptors: a few for the runtime and the store, the rest for clients.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_auditgate"))
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream", &upstream.url()])
        .arg("--rules")
        .arg(dir.path())
        .args(["--database", &database, "--query-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .env("AUDITGATE_LIMITS__HEADER_READ_TIMEOUT", "60s")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (addr, mut stderr) = logged_addr(&mut child);
    // Silent connections past the descriptor limit: the kernel queues them,
    // accept fails with EMFILE.
    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(child.try_wait().unwrap().is_none(), "auditgate died out of descriptors");
    drop(silent);
    let res = tokio::time::timeout(Duration::from_secs(10), get(&format!("http://{addr}/")))
        .await
        .expect("served again once descriptors were free");
    assert_eq!(res.status(), 200);
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("accept failed, backing off"), "descriptors never ran out: {rest}");
}

/// `auditgate serve` on a database and spool in `dir`, in front of
/// `upstream`, with `env`; its log is drained so it never blocks.
pub(crate) fn serve_in(
    dir: &std::path::Path,
    database: &str,
    upstream: &str,
    env: &[(&str, &str)],
) -> (Running, std::net::SocketAddr) {
    let (running, addr, _) = serve_in_logged(dir, database, upstream, env);
    (running, addr)
}

/// As `serve_in`, with what it logged while starting (up to its address).
pub(crate) fn serve_in_logged(
    dir: &std::path::Path,
    database: &str,
    upstream: &str,
    env: &[(&str, &str)],
) -> (Running, std::net::SocketAddr, String) {
    let mut child = auditgate()
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream", upstream])
        .arg("--rules")
        .arg(dir)
        .args(["--database", database, "--query-listen", "127.0.0.1:0"])
        .env("AUDITGATE_RECORDER__SPOOL", dir.join("audit.spool"))
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let addr = loop {
        let start = log.len();
        assert!(stderr.read_line(&mut log).unwrap() > 0, "the proxy never logged its address: {log}");
        if let Some(addr) = log[start..].split("addr=").nth(1).and_then(|a| a.split_whitespace().next()) {
            break addr.parse().unwrap();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut stderr.into_inner(), &mut std::io::sink()));
    (Running(child), addr, log)
}

/// A started binary, killed if the test ends (or fails) before it does.
pub(crate) struct Running(std::process::Child);

impl Running {
    pub(crate) fn sigkill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }

    /// SIGTERM, and the exit code within 10 s.
    pub(crate) async fn sigterm(&mut self) -> Option<i32> {
        Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status().unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.code();
            }
            assert!(started.elapsed() < Duration::from_secs(10), "did not exit after SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Creates sent to `addr` by `workers` clients in a loop until the proxy
/// goes away; the ids answered 201, once the tasks have ended.
type Answered = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

fn create_load(
    addr: std::net::SocketAddr,
    workers: usize,
    cookie: &'static str,
) -> (Answered, Vec<tokio::task::JoinHandle<()>>) {
    let answered = Answered::default();
    let tasks = (0..workers)
        .map(|worker| {
            let answered = answered.clone();
            tokio::spawn(async move {
                for i in 0.. {
                    let req = http::Request::post(format!("http://{addr}/api/items/"))
                        .header("content-type", "application/json")
                        .header("cookie", cookie)
                        .body(http_body_util::Full::new(bytes::Bytes::from(format!("{{\"name\": \"{worker}-{i}\"}}"))))
                        .unwrap();
                    let Ok(res) = client().request(req).await else { return };
                    let status = res.status();
                    let Ok(body) = http_body_util::BodyExt::collect(res.into_body()).await else { return };
                    if status == 201 {
                        let item: serde_json::Value = serde_json::from_slice(&body.to_bytes()).unwrap();
                        answered.lock().unwrap().push(item["id"].to_string());
                    }
                }
            })
        })
        .collect();
    (answered, tasks)
}

/// Every id in `answered` has exactly one entry in the trail (waiting up to
/// 10 s for a restarted proxy to replay its spool), and the chain verifies.
async fn every_answer_has_its_entry(store: &Store, answered: &[String]) {
    let started = Instant::now();
    loop {
        let (entries, _) = store.list(&Default::default(), None, 1000).await.unwrap();
        let recorded: std::collections::HashSet<String> =
            entries.iter().filter_map(|e| e.resource_id.clone()).collect();
        let missing: Vec<&String> = answered.iter().filter(|id| !recorded.contains(*id)).collect();
        if missing.is_empty() {
            assert_eq!(recorded.len(), entries.len(), "no entry twice");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "answered 201 without an entry: {missing:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.verify().await.unwrap().ok);
}

#[tokio::test]
async fn d18_sigkill_with_entries_in_the_spool_loses_none_after_restart() {
    let upstream = spawn_upstream();
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(dir.path()).await;
    let spool = dir.path().join("audit.spool");
    let start = || serve_in_logged(dir.path(), &database, &upstream.url(), &[]);
    let (mut child, addr, log) = start();
    assert!(!log.contains("replaying the spool") && !log.contains("torn line"), "nothing to replay: {log}");
    assert!(!log.contains("no rules directory"), "--rules names one: {log}");
    let store = Store::open(&database, false).await.unwrap();
    crate::durability::refuse(&store).await;
    let mut created = Vec::new();
    for i in 0..10 {
        let req = http::Request::post(format!("http://{addr}/api/items/"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(format!("{{\"name\": \"n{i}\"}}"))))
            .unwrap();
        let res = send(&client(), req).await;
        assert_eq!(res.status(), 201);
        created.push(serde_json::from_slice::<serde_json::Value>(res.body()).unwrap()["id"].to_string());
    }
    let started = Instant::now();
    while std::fs::read_to_string(&spool).map_or(0, |t| t.lines().count()) < 10 {
        assert!(started.elapsed() < Duration::from_secs(10), "the entries never reached the spool");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.sigkill();
    crate::durability::accept(&store).await;
    // Half a line, as a crash mid-write leaves it.
    std::fs::OpenOptions::new().append(true).open(&spool).unwrap().write_all(b"{\"id\": \"01").unwrap();

    let (mut child, _, log) = start();
    assert!(log.contains("replaying the spool an earlier run left") && log.contains("entries=10"), "{log}");
    assert!(log.contains("the spool ended in a torn line") && log.contains("bytes=10"), "{log}");
    let started = Instant::now();
    let entries = loop {
        let (found, _) = store.list(&Default::default(), None, 100).await.unwrap();
        if found.len() >= 10 {
            break found;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "only {} entries after the restart", found.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Creates of different resources are recorded as their after-states
    // complete, which need not be the order they were answered in.
    every_answer_has_its_entry(&store, &created).await;
    assert_eq!(entries.len(), 10);
    assert_eq!(child.sigterm().await, Some(0));
    assert_eq!(std::fs::metadata(&spool).unwrap().len(), 0, "the spool is empty once replayed");
}

#[tokio::test]
async fn verify_prints_heads_and_a_chain_cut_behind_a_kept_head_fails_naming_the_instance() {
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(dir.path()).await;
    let spool = dir.path().join("audit.spool").display().to_string();
    let env = [("AUDITGATE_DATABASE", database.as_str()), ("AUDITGATE_RECORDER__SPOOL", spool.as_str())];
    let app = spawn_app_with(&env, None).await;
    let create = |name: &'static str| {
        let req = http::Request::post(app.url("/api/items/"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(format!("{{\"name\": \"{name}\"}}"))))
            .unwrap();
        async move { assert_eq!(send(&client(), req).await.status(), 201) }
    };
    for name in ["a", "b", "c"] {
        create(name).await;
    }
    crate::audit::wait_entries(&app.store, 3).await;
    let verify = |extra: &[&str]| auditgate().args(["verify", "--database", &database]).args(extra).output().unwrap();
    let first = verify(&[]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    let head = &printed["heads"][0];
    assert_eq!(printed["heads"].as_array().unwrap().len(), 1);
    let newest = app.store.list(&Default::default(), None, 1).await.unwrap().0.remove(0);
    assert_eq!((head["id"].as_str(), head["hash"].as_str()), (Some(newest.id.as_str()), Some(newest.hash.as_str())));
    let kept = dir.path().join("heads.json");
    std::fs::write(&kept, &first.stdout).unwrap();

    // The chain grows: it still reaches the kept head.
    for name in ["d", "e"] {
        create(name).await;
    }
    crate::audit::wait_entries(&app.store, 5).await;
    let kept_arg = kept.display().to_string();
    let later = verify(&["--heads", &kept_arg]);
    let said = String::from_utf8_lossy(&later.stderr);
    assert!(later.status.success(), "{said}");
    assert!(said.contains("5 entries checked, every chain intact, each reaching its 1 kept head(s)"), "{said}");
    let plain = String::from_utf8_lossy(&first.stderr);
    assert!(plain.contains("3 entries checked, every chain intact") && !plain.contains("kept head"), "{plain}");

    // Someone deletes the newest three entries and rewrites chain_head to
    // match: the chain alone looks whole, the kept head does not.
    let instance = head["instance"].as_str().unwrap().to_string();
    app.stop().await;
    let store = Store::open(&database, false).await.unwrap();
    let mut oldest = store.list(&Default::default(), None, 100).await.unwrap().0;
    oldest.reverse();
    let last = &oldest[1];
    execute(&store, "DELETE FROM audit_log WHERE id > $1", &[&last.id]).await;
    execute(&store, "UPDATE chain_head SET last_id = $1, last_hash = $2", &[&last.id, &last.hash]).await;
    store.close().await;
    assert!(verify(&[]).status.success(), "a cut tail with its head rewritten passes a plain verify");
    let caught = verify(&["--heads", &kept_arg]);
    assert_eq!(caught.status.code(), Some(1));
    let err = String::from_utf8_lossy(&caught.stderr);
    assert!(err.contains(&format!("TAMPERED: instance {instance}: kept head {}", newest.id)), "{err}");
    assert!(err.contains("the chain was cut"), "{err}");

    // A file that is not verify's output is a usage error naming it.
    std::fs::write(&kept, "{\"ok\": true}\n").unwrap();
    let bad = verify(&["--heads", &kept_arg]);
    assert_eq!(bad.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains(&format!("{kept_arg}:1:")),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[tokio::test]
async fn d18_with_durability_sync_every_change_answered_before_a_sigkill_has_its_entry() {
    let upstream = spawn_upstream();
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(dir.path()).await;
    let start = || serve_in(dir.path(), &database, &upstream.url(), &[("AUDITGATE_RECORDER__DURABILITY", "sync")]);
    let (mut child, addr) = start();
    let (answered, load) = create_load(addr, 8, "delay_write=0");
    tokio::time::sleep(Duration::from_millis(400)).await;
    child.sigkill();
    for task in load {
        task.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() > 20, "the load ran ({} creates answered)", answered.len());

    // Whatever the kill left in the spool is replayed by the next start.
    let (mut child, _) = start();
    let store = Store::open(&database, false).await.unwrap();
    every_answer_has_its_entry(&store, &answered).await;
    assert_eq!(child.sigterm().await, Some(0));
}

#[tokio::test]
async fn d20_sigterm_under_load_answers_in_flight_requests_and_loses_no_entry() {
    let upstream = spawn_upstream();
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(dir.path()).await;
    let (mut child, addr) = serve_in(dir.path(), &database, &upstream.url(), &[]);
    // Slow enough that some are in flight when the signal comes.
    let (answered, load) = create_load(addr, 8, "delay_write=20");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(child.sigterm().await, Some(0));
    for task in load {
        task.await.unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() >= 16, "the load ran ({} creates answered)", answered.len());
    let store = Store::open(&database, false).await.unwrap();
    every_answer_has_its_entry(&store, &answered).await;
}

/// One create through `addr`; answers the new item's id.
async fn create(addr: std::net::SocketAddr, name: &str) -> String {
    let req = http::Request::post(format!("http://{addr}/api/items/"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(format!("{{\"name\": \"{name}\"}}"))))
        .unwrap();
    let res = send(&client(), req).await;
    assert_eq!(res.status(), 201, "served");
    serde_json::from_slice::<serde_json::Value>(res.body()).unwrap()["id"].to_string()
}

/// Sets the soft file-size limit of process `pid` (`None`: back to its hard limit).
fn limit_file_size(pid: u32, bytes: Option<u64>) {
    let soft = bytes.map_or("unlimited".to_string(), |b| b.to_string());
    let status = Command::new("prlimit").arg(format!("--pid={pid}")).arg(format!("--fsize={soft}:")).status().unwrap();
    assert!(status.success(), "prlimit");
}

/// D19, disk full: the database cannot grow (a file-size limit put on the
/// running process: writes past it fail as on a full disk, and auditgate
/// catches the SIGXFSZ that would otherwise kill it). Entries go to the
/// spool, every create is answered, and once the database can grow again
/// the spool is replayed: every answer has its entry, none twice, and the
/// chain verifies.
#[tokio::test]
async fn d19_a_database_that_cannot_grow_spools_and_replays_once_it_can() {
    let upstream = spawn_upstream();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("audit.db").display());
    let spool = dir.path().join("audit.spool");
    let (mut child, addr) = serve_in(dir.path(), &database, &upstream.url(), &[]);
    let pid = child.0.id();
    let mut created = Vec::new();
    for i in 0..3 {
        created.push(create(addr, &format!("before-{i}")).await);
    }
    let store = Store::open(&database, false).await.unwrap();
    every_answer_has_its_entry(&store, &created).await;

    // No file of the process may grow past 48 KiB: a batch needs several
    // 16 KiB pages in the WAL, a spool line about 1.3 KiB.
    limit_file_size(pid, Some(48 << 10));
    for i in 0..10 {
        created.push(create(addr, &format!("full-{i}")).await);
    }
    let started = Instant::now();
    while std::fs::read_to_string(&spool).map_or(0, |t| t.lines().count()) < 10 {
        assert!(started.elapsed() < Duration::from_secs(10), "the entries never reached the spool");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(child.0.try_wait().unwrap().is_none(), "auditgate died when the disk was full");

    limit_file_size(pid, None);
    every_answer_has_its_entry(&store, &created).await;
    assert_eq!(child.sigterm().await, Some(0));
    assert_eq!(std::fs::metadata(&spool).unwrap().len(), 0, "the spool is empty once replayed");
}

/// D19, read-only database: auditgate started on a SQLite database it may
/// only read (opened `mode=ro`: every write fails as on a read-only file
/// or file system, whoever runs the test) serves every create and spools
/// its entry; started again on a writable database, it replays the spool:
/// every answer has its entry, none twice.
#[tokio::test]
async fn d19_a_read_only_database_spools_and_the_next_start_replays() {
    let upstream = spawn_upstream();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("audit.db").display());
    let migrated = auditgate().args(["migrate", "--database", &database]).output().unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let read_only = format!("{database}?mode=ro");
    let (mut child, addr) = serve_in(dir.path(), &read_only, &upstream.url(), &[]);
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(create(addr, &format!("ro-{i}")).await);
    }
    let spool = dir.path().join("audit.spool");
    let started = Instant::now();
    while std::fs::read_to_string(&spool).map_or(0, |t| t.lines().count()) < 5 {
        assert!(started.elapsed() < Duration::from_secs(10), "the entries never reached the spool");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(child.sigterm().await, Some(0), "a clean stop, the entries left in the spool");
    let store = Store::open(&database, false).await.unwrap();
    assert!(store.list(&Default::default(), None, 10).await.unwrap().0.is_empty(), "nothing was written");

    let (mut child, _) = serve_in(dir.path(), &database, &upstream.url(), &[]);
    every_answer_has_its_entry(&store, &created).await;
    assert_eq!(child.sigterm().await, Some(0));
    assert_eq!(std::fs::metadata(&spool).unwrap().len(), 0, "the spool is empty once replayed");
}

/// `auditgate health`: 0 while the query port answers 200, 1 with the
/// reason once nothing listens there; a wildcard `query_listen` is probed
/// on loopback.
#[tokio::test]
async fn health_exits_0_while_the_query_port_answers_and_1_once_it_is_gone() {
    let app = spawn_app().await;
    let port = app.query_addr.port().to_string();
    // Run beside the test's runtime, which serves the app.
    let health = |addr: String| {
        let mut cmd = auditgate();
        cmd.args(["health", "--query-listen", &addr]);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };
    let out = health(format!("0.0.0.0:{port}")).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    app.stop().await;
    let out = health(format!("127.0.0.1:{port}")).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with(&format!("auditgate: health: 127.0.0.1:{port}: ")), "{err}");
    // A bad address is the configuration's fault: 64.
    assert_eq!(health("nowhere".into()).await.unwrap().status.code(), Some(64));
}

/// Runs `cmd` to its end, at most `limit` (a FIFO once hung start-up for ever).
fn output_within(mut cmd: Command, limit: Duration) -> std::process::Output {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            panic!("still running after {limit:?}");
        }
    }
}

/// `auditgate serve` in `dir` (its database and spool there unless `env`
/// names others) with `env`; its output once it has exited.
fn serve_with(dir: &std::path::Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = auditgate();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--query-listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9"])
        .arg("--rules")
        .arg(dir)
        .env("AUDITGATE_DATABASE", format!("sqlite://{}", dir.join("audit.db").display()))
        .env("AUDITGATE_RECORDER__SPOOL", dir.join("audit.spool"))
        .envs(env.iter().copied());
    output_within(cmd, Duration::from_secs(10))
}

#[test]
fn bad_settings_stop_start_up_with_exit_64_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.spool");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let a_dir = dir.path().join("a-directory");
    std::fs::create_dir(&a_dir).unwrap();
    let nowhere = dir.path().join("missing/dir/audit.spool");
    let (fifo, a_dir, nowhere) = (fifo.to_str().unwrap(), a_dir.to_str().unwrap(), nowhere.to_str().unwrap());
    let in_a_dir = format!("sqlite://{a_dir}");
    for (variable, value, named) in [
        ("AUDITGATE_RECORDER__SPOOL", fifo, "recorder.spool"),
        ("AUDITGATE_RECORDER__SPOOL", a_dir, "recorder.spool"),
        ("AUDITGATE_RECORDER__SPOOL", nowhere, "recorder.spool"),
        ("AUDITGATE_DATABASE", &in_a_dir, "database"),
        ("AUDITGATE_LIMITS__HEADER_READ_TIMEOUT", "0s", "limits.header_read_timeout"),
        ("AUDITGATE_RECORDER__FLUSH_INTERVAL", "99999999999999s", "recorder.flush_interval"),
        ("AUDITGATE_RETENTION_DAYS", "4294967295", "retention_days"),
        ("AUDITGATE_WORKER_THREADS", "100000", "worker_threads"),
        ("AUDITGATE_SNAPSHOT__MAX_BYTES", "0", "snapshot.max_bytes"),
    ] {
        let out = serve_with(dir.path(), &[(variable, value)]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{variable}={value}: {said}");
        assert!(said.contains(named), "{variable}={value} names {named}: {said}");
    }
    assert!(!dir.path().join("audit.db").exists(), "no database is made by a start that fails");
}

/// Starts `cmd` (`RUST_LOG=info`, output piped), reads its log up to the
/// line naming the proxy's address: the lines before it, and the child.
fn started(mut cmd: Command) -> (std::process::Child, String) {
    let mut child = cmd.env("RUST_LOG", "info").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "exited before listening: {log}");
        log.push_str(&line);
        if line.contains("addr=") {
            break;
        }
    }
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (child, log)
}

#[test]
fn a_newcomers_mistakes_are_named_at_start() {
    let dir = tempfile::tempdir().unwrap();
    // --rules naming a directory that is not there: refused.
    let mut cmd = auditgate();
    cmd.args(["serve", "--upstream", "http://127.0.0.1:9", "--rules", "/no/such/rules"]);
    let out = output_within(cmd, Duration::from_secs(10));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{said}");
    assert!(said.contains("rules: `/no/such/rules` is not a directory"), "{said}");

    // Started where there is no rules/ (the default), in front of an
    // upstream that refuses connections: two warnings, and it serves, and
    // says where its console is.
    let mut cmd = auditgate();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--query-listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9"])
        .env("AUDITGATE_DATABASE", format!("sqlite://{}", dir.path().join("audit.db").display()))
        .env("AUDITGATE_RECORDER__SPOOL", dir.path().join("audit.spool"))
        .current_dir(dir.path());
    let (mut child, log) = started(cmd);
    assert!(log.contains("no rules directory: the built-in path rules apply"), "{log}");
    assert!(log.contains("the upstream does not take connections now; serving anyway"), "{log}");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut announced = String::new();
    stdout.read_line(&mut announced).unwrap();
    stdout.read_line(&mut announced).unwrap();
    assert!(announced.contains("console and query API on http://127.0.0.1:"), "{announced}");
    let query = announced.lines().nth(1).unwrap().rsplit(' ').next().unwrap().to_string();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(query.starts_with("http://127.0.0.1:") && query.ends_with('/'), "{query}");

    // A port in use: the start fails and leaves no database behind.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let fresh = dir.path().join("fresh.db");
    let mut cmd = auditgate();
    cmd.args(["serve", "--query-listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9"])
        .args(["--listen", &taken.local_addr().unwrap().to_string()])
        .arg("--rules")
        .arg(dir.path())
        .env("AUDITGATE_DATABASE", format!("sqlite://{}", fresh.display()))
        .env("AUDITGATE_RECORDER__SPOOL", dir.path().join("audit.spool"));
    let out = output_within(cmd, Duration::from_secs(10));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("cannot listen on"), "{said}");
    assert!(!fresh.exists(), "a start that failed made {}", fresh.display());
}

/// The demo's sample app starts empty every run, and so does its trail:
/// a second run's `user/1` is not a mix of two runs' users.
#[tokio::test]
async fn the_demo_starts_its_trail_afresh_with_its_sample_app() {
    let dir = tempfile::tempdir().unwrap();
    for run in ["Alice", "Bob"] {
        let mut child = auditgate()
            .args(["demo", "--listen", "127.0.0.1:0", "--query-listen", "127.0.0.1:0"])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (proxy, query, mut stdout) = demo_addresses(&mut child);
        let listed: serde_json::Value =
            serde_json::from_slice(get(&format!("{query}/api/v1/audit-logs")).await.body()).unwrap();
        assert_eq!(listed["items"], serde_json::json!([]), "{run}'s run starts with an empty trail");
        let create = http::Request::post(format!("{proxy}/api/v1/users/"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(format!("{{\"name\": \"{run}\"}}"))))
            .unwrap();
        let made: serde_json::Value = serde_json::from_slice(send(&client(), create).await.body()).unwrap();
        assert_eq!(made["id"], 1, "the sample app starts empty");
        let started = Instant::now();
        loop {
            let history: serde_json::Value =
                serde_json::from_slice(get(&format!("{query}/api/v1/resources/user/1/history")).await.body()).unwrap();
            let items = history["items"].as_array().unwrap();
            if !items.is_empty() {
                assert_eq!(items.len(), 1, "{history}");
                assert_eq!(items[0]["after"]["name"], run);
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "no entry appeared");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(0));
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).unwrap();
        assert!(!rest.contains("keeps earlier runs"), "a fresh trail says nothing of earlier runs: {rest}");
    }
    assert!(dir.path().join("auditgate-demo.db").exists(), "the demo's own files, in its directory");
    assert!(!dir.path().join("auditgate.spool").exists(), "never the spool `serve` uses");
}
