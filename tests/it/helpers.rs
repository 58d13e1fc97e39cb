//! Test harness: `spawn_upstream()` starts the example upstream as its own
//! process; `spawn_app()` builds auditgate in front of it on port 0.
//! Logs stay silent unless `TEST_LOG` is set.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use auditgate::App;
use auditgate::config::Config;
use auditgate::store::Store;
use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A built binary next to this test binary (`target/<profile>/<name>`).
pub fn sibling_binary(sub: &str, name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/<test>");
    profile_dir.join(sub).join(name)
}

/// The upstream process; killed on drop.
pub struct Upstream {
    child: Child,
    pub addr: SocketAddr,
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `examples/upstream` on a free port and waits until it listens.
pub fn spawn_upstream() -> Upstream {
    spawn_upstream_with(&[])
}

/// The example upstream with these environment variables (its TLS pair).
pub fn spawn_upstream_with(env: &[(&str, &std::path::Path)]) -> Upstream {
    let path = sibling_binary("examples", "upstream");
    let mut child = Command::new(&path)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e} (run `cargo build --examples` first)", path.display()));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").expect("the upstream prints its address").parse().unwrap();
    Upstream { child, addr }
}

/// A running auditgate; shut down on drop.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The query port.
    pub query_addr: SocketAddr,
    /// The trail's store (a fresh database per test, see `test_database`).
    pub store: Store,
    pub upstream: Option<Upstream>,
    /// The recorder's spool file.
    pub spool: PathBuf,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: Option<JoinHandle<()>>,
    _rules: tempfile::TempDir,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A URL on the query port.
    pub fn query(&self, path: &str) -> String {
        format!("http://{}{path}", self.query_addr)
    }

    /// Signals shutdown without waiting for it.
    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(mut self) {
        self.signal_shutdown();
        tokio::time::timeout(Duration::from_secs(10), self.task.take().unwrap())
            .await
            .expect("shutdown finishes")
            .unwrap();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        auditgate::telemetry::init(auditgate::config::LogFormat::Text);
    }
}

/// auditgate in front of a fresh upstream, default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[], None).await
}

/// auditgate in front of a fresh upstream; `env` holds `AUDITGATE_*` pairs,
/// `rules` the text of `resources.toml`.
pub async fn spawn_app_with(env: &[(&str, &str)], rules: Option<&str>) -> TestApp {
    let upstream = spawn_upstream();
    let mut app = spawn_app_to(&upstream.url(), env, rules).await;
    app.upstream = Some(upstream);
    app
}

/// auditgate in front of any upstream URL.
pub async fn spawn_app_to(upstream: &str, env: &[(&str, &str)], rules: Option<&str>) -> TestApp {
    let files: Vec<(&str, &str)> = rules.map(|text| ("resources.toml", text)).into_iter().collect();
    spawn_app_files(upstream, env, &files).await
}

/// auditgate in front of `upstream` with these files (`resources.toml`,
/// `audit.toml`) in its rules directory.
pub async fn spawn_app_files(upstream: &str, env: &[(&str, &str)], files: &[(&str, &str)]) -> TestApp {
    init_logs();
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let mut flags = vec![
        ("upstream", upstream.to_string()),
        ("listen", "127.0.0.1:0".to_string()),
        ("query_listen", "127.0.0.1:0".to_string()),
        ("rules", dir.path().display().to_string()),
    ];
    if !env.iter().any(|(k, _)| *k == "AUDITGATE_DATABASE") {
        flags.push(("database", test_database(dir.path()).await));
    }
    // The spool beside the test's database, never in the working directory.
    let default_spool = dir.path().join("audit.spool").display().to_string();
    let mut env: Vec<(&str, &str)> = env.to_vec();
    if !env.iter().any(|(k, _)| *k == "AUDITGATE_RECORDER__SPOOL") {
        env.push(("AUDITGATE_RECORDER__SPOOL", &default_spool));
    }
    let spool = PathBuf::from(env.iter().find(|(k, _)| *k == "AUDITGATE_RECORDER__SPOOL").unwrap().1);
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    let config = Config::load(None, env, &flags).expect("test configuration is valid");
    let app = App::build(config).await.expect("app builds");
    let addr = app.proxy_addr();
    let query_addr = app.query_addr();
    let store = app.store().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async {
        let _ = rx.await;
    }));
    TestApp { addr, query_addr, store, upstream: None, spool, shutdown: Some(tx), task: Some(task), _rules: dir }
}

/// The server tests write to when `TEST_POSTGRES_URL` names one
/// (`scripts/test.sh` starts a throwaway cluster and runs the trail's
/// tests once more against it).
pub fn test_postgres() -> Option<String> {
    std::env::var("TEST_POSTGRES_URL").ok().filter(|url| !url.is_empty())
}

/// The database of a test directory: a SQLite file in `dir`, or with
/// `TEST_POSTGRES_URL` set, a database on that server made for `dir`
/// at the first call (its URL kept in the directory, so an app started
/// again in `dir` finds the same trail).
pub async fn test_database(dir: &std::path::Path) -> String {
    let Some(server) = test_postgres() else { return format!("sqlite://{}", dir.join("audit.db").display()) };
    let kept = dir.join("postgres.url");
    if let Ok(url) = std::fs::read_to_string(&kept) {
        return url;
    }
    drop_finished_databases(&server).await;
    let url = new_postgres_database(&server).await;
    std::fs::write(&kept, &url).unwrap();
    MADE.lock().unwrap().push((dir.to_path_buf(), url.rsplit_once('/').unwrap().1.to_string()));
    url
}

/// The databases `test_database` made, each with the directory of the test
/// that owns it.
static MADE: std::sync::Mutex<Vec<(PathBuf, String)>> = std::sync::Mutex::new(Vec::new());

/// Drops the databases of tests whose directory is gone (the test is over):
/// a full run made some 200 and filled a small CI disk. A database still
/// connected to (a store a test kept past its directory) is left to a later
/// sweep: `DROP DATABASE` without `FORCE` refuses it.
async fn drop_finished_databases(server: &str) {
    use sqlx::Connection;
    let finished: Vec<(PathBuf, String)> = {
        let mut made = MADE.lock().unwrap();
        let (gone, kept) = made.drain(..).partition(|(dir, _)| !dir.exists());
        *made = kept;
        gone
    };
    if finished.is_empty() {
        return;
    }
    let mut conn = sqlx::PgConnection::connect(server).await.expect("the test PostgreSQL answers");
    for (dir, name) in finished {
        let drop = format!("DROP DATABASE IF EXISTS {name}");
        if sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut conn).await.is_err() {
            MADE.lock().unwrap().push((dir, name));
        }
    }
    conn.close().await.unwrap();
}

/// A new database on the PostgreSQL `server` (a `postgres://…/postgres`
/// URL); answers its URL.
pub async fn new_postgres_database(server: &str) -> String {
    use sqlx::Connection;
    let name = format!("t_{}", ulid::Ulid::new().to_string().to_lowercase());
    let mut conn = sqlx::PgConnection::connect(server).await.expect("the test PostgreSQL answers");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let (base, _) = server.rsplit_once('/').expect("a postgres URL ends in /DATABASE");
    format!("{base}/{name}")
}

/// Runs `sql` (binds as `$1`, `$2`…, which both backends take) on the
/// store's own database, as someone with access to it would: tests tamper
/// with rows this way. Answers the rows changed.
pub async fn execute(store: &Store, sql: &str, binds: &[&str]) -> u64 {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    match store {
        Store::Sqlite(s) => {
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(b.to_string());
            }
            q.execute(s.pool()).await.unwrap().rows_affected()
        }
        Store::Postgres(s) => {
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(b.to_string());
            }
            q.execute(s.pool()).await.unwrap().rows_affected()
        }
    }
}

/// Every stored entry's JSON text, in id order.
pub async fn stored_entries(store: &Store) -> Vec<String> {
    match store {
        Store::Sqlite(s) => {
            sqlx::query_scalar("SELECT entry FROM audit_log ORDER BY id").fetch_all(s.pool()).await.unwrap()
        }
        Store::Postgres(s) => {
            sqlx::query_scalar("SELECT entry::text FROM audit_log ORDER BY id").fetch_all(s.pool()).await.unwrap()
        }
    }
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

/// An HTTP/1.1 client.
pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// An HTTP/2 client with prior knowledge (h2c).
pub fn h2_client() -> TestClient {
    Client::builder(TokioExecutor::new()).http2_only(true).build(HttpConnector::new())
}

/// Sends a request and reads the whole answer.
pub async fn send(client: &TestClient, req: Request<Full<Bytes>>) -> Response<Bytes> {
    let res = client.request(req).await.expect("the proxy answers");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("the body arrives whole").to_bytes();
    Response::from_parts(parts, body)
}

/// A request to the proxy as `user` (Basic auth, any password), with a
/// JSON body when there is one.
pub fn as_basic(app: &TestApp, user: &str, method: Method, path: &str, body: Option<&Value>) -> Request<Full<Bytes>> {
    use base64::Engine;
    let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:pw")));
    Request::builder()
        .method(method)
        .uri(app.url(path))
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(body.map_or_else(Full::default, |b| Full::new(Bytes::from(b.to_string()))))
        .unwrap()
}

/// Sends `as_basic` and reads the answer's JSON (`null` if none).
pub async fn as_user(app: &TestApp, user: &str, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let res = send(&client(), as_basic(app, user, method, path, body)).await;
    (res.status().as_u16(), serde_json::from_slice(res.body()).unwrap_or(Value::Null))
}

/// `GET url`.
pub async fn get(url: &str) -> Response<Bytes> {
    send(&client(), Request::get(url).body(Full::default()).unwrap()).await
}

/// Writes raw bytes and reads until the server closes or goes quiet for 1 s.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Asserts the proxy still serves a plain request.
pub async fn assert_still_serving(app: &TestApp) {
    let res = get(&app.url("/")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.body().as_ref(), b"hello from upstream\n");
}

/// The upstream's `/inspect` answer: the request as it arrived there.
pub fn inspected(res: &Response<Bytes>) -> serde_json::Value {
    serde_json::from_slice(res.body()).expect("/inspect answers JSON")
}

/// Values of one header in an `/inspect` answer.
pub fn seen_header(inspect: &serde_json::Value, name: &str) -> Vec<String> {
    inspect["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0] == name)
        .map(|pair| pair[1].as_str().unwrap().to_string())
        .collect()
}

/// A request as user `diana` (Basic) with a JSON body (or none) and
/// `extra` headers; the answer as sent, not decoded.
pub async fn as_diana(url: &str, method: Method, body: Option<Value>, extra: &[(&str, &str)]) -> Response<Bytes> {
    let mut b = Request::builder().method(method).uri(url).header("authorization", "Basic ZGlhbmE6cHc=");
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    let body = match body {
        Some(v) => {
            b = b.header("content-type", "application/json");
            Full::new(Bytes::from(v.to_string()))
        }
        None => Full::default(),
    };
    send(&client(), b.body(body).unwrap()).await
}

/// True when the server closes `stream` within `limit` (reading what it sends).
pub async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// A connection that has had one `GET /` answered 200 and is kept alive.
pub async fn kept_alive(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    stream
}

/// A real app process the tests put auditgate in front of (PHP, Django,
/// FastAPI, json-server), listening on a port of its own; killed when
/// dropped, with the directory it keeps its data in.
pub struct AppServer {
    child: std::process::Child,
    pub port: u16,
    _dir: Option<tempfile::TempDir>,
}

impl AppServer {
    /// A free port on 127.0.0.1 for an app to listen on.
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    /// Starts `cmd` (its output discarded) and waits for it to listen on
    /// `port`; `what` names it when it does not start (`hint`: what to run).
    pub fn start(cmd: &mut std::process::Command, port: u16, what: &str, hint: &str) -> AppServer {
        use std::process::Stdio;
        let child =
            cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| panic!("{what}: {e} ({hint})"));
        let mut server = AppServer { child, port, _dir: None };
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(60), "{what} did not start");
            assert!(server.child.try_wait().unwrap().is_none(), "{what} exited ({hint})");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Keeps `dir` as long as the app runs.
    pub fn keeping(mut self, dir: tempfile::TempDir) -> AppServer {
        self._dir = Some(dir);
        self
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for AppServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
