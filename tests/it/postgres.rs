//! Several instances on one PostgreSQL (docs/trail.md; docs/security.md D19):
//! mutations of one resource through two instances take turns through the
//! store's advisory lock, each instance keeps its own chain and `verify`
//! checks both; a server stopped under load loses no entry. These need a
//! server: `scripts/test.sh` runs them with `TEST_POSTGRES_URL` (and
//! `TEST_POSTGRES_BIN`, to start and stop servers of their own) set.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use auditgate::entry::AuditEntry;
use auditgate::store::{Filter, Store};
use http::Method;
use serde_json::{Value, json};

use crate::audit::{call, wait_entries};
use crate::durability::{metric, wait_metric};
use crate::helpers::*;

fn server() -> String {
    test_postgres().expect("TEST_POSTGRES_URL is not set: run these through scripts/test.sh")
}

/// Two instances on one database in `dir`, in front of one upstream.
async fn two_instances(dir: &Path, upstream: &str) -> (TestApp, TestApp) {
    let database = test_database(dir).await;
    assert!(database.starts_with("postgres://"));
    let spool = |name: &str| dir.join(name).display().to_string();
    let (spool_a, spool_b) = (spool("a.spool"), spool("b.spool"));
    let a = [
        ("AUDITGATE_DATABASE", database.as_str()),
        ("AUDITGATE_INSTANCE", "gw-a"),
        ("AUDITGATE_RECORDER__SPOOL", spool_a.as_str()),
    ];
    let b = [
        ("AUDITGATE_DATABASE", database.as_str()),
        ("AUDITGATE_INSTANCE", "gw-b"),
        ("AUDITGATE_RECORDER__SPOOL", spool_b.as_str()),
    ];
    (spawn_app_to(upstream, &a, None).await, spawn_app_to(upstream, &b, None).await)
}

/// Orders a resource's update entries by their states: each one's
/// `before` is the `after` of exactly one other (or the first state).
/// Panics naming the entry where the chain of states breaks.
fn chain_of_states(first: &Value, entries: &[AuditEntry]) -> Vec<String> {
    let mut left: Vec<&AuditEntry> = entries.iter().collect();
    let mut state = first.clone();
    let mut order = Vec::new();
    while !left.is_empty() {
        let next: Vec<usize> = (0..left.len()).filter(|&i| left[i].before.as_ref() == Some(&state)).collect();
        assert_eq!(next.len(), 1, "{} entries start from {state}: diffs are not exact", next.len());
        let e = left.remove(next[0]);
        order.push(e.instance.clone());
        state = e.after.clone().expect("an update has an after-state");
    }
    order
}

#[tokio::test]
async fn two_instances_take_turns_on_one_resource_and_keep_a_chain_each() {
    server();
    let dir = tempfile::tempdir().unwrap();
    let upstream = spawn_upstream();
    let (a, b) = two_instances(dir.path(), &upstream.url()).await;
    let (_, created) = call(&a, Method::POST, "/api/items/", json!({"v": "start"})).await;
    let item = format!("/api/items/{}/", created["id"]);
    let first = wait_entries(&a.store, 1).await[0].after.clone().unwrap();
    // 2 × 25 concurrent PATCHes of the one item, half through each instance.
    let patches = (0..50).map(|i| {
        let (app, item) = (if i % 2 == 0 { &a } else { &b }, item.clone());
        async move { call(app, Method::PATCH, &item, json!({"v": format!("p{i}")})).await.0 }
    });
    let statuses = futures_util::future::join_all(patches).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let entries = wait_entries(&a.store, 51).await;
    let updates: Vec<AuditEntry> = entries.into_iter().filter(|e| e.action == "update").collect();
    let order = chain_of_states(&first, &updates);
    assert_eq!(order.len(), 50);
    assert!(order.iter().any(|i| i == "gw-a") && order.iter().any(|i| i == "gw-b"));

    let verdict = a.store.verify().await.unwrap();
    assert_eq!((verdict.ok, verdict.checked), (true, 51), "{verdict:?}");
    let heads: Vec<&str> = verdict.heads.iter().map(|h| h.instance.as_str()).collect();
    assert_eq!(heads, ["gw-a", "gw-b"]);

    // An edited row of either chain is named.
    let mut of_b = Filter::default();
    of_b.set("instance", "gw-b").unwrap();
    let (found, _) = a.store.list(&of_b, None, 5).await.unwrap();
    let victim = &found[2];
    execute(&a.store, "UPDATE audit_log SET entry = replace(entry, '\"p', '\"q') WHERE id = $1", &[&victim.id]).await;
    let verdict = b.store.verify().await.unwrap();
    assert_eq!((verdict.ok, verdict.first_bad.as_deref()), (false, Some(victim.id.as_str())));
}

/// A PostgreSQL server of the test's own, started and stopped at will.
struct OwnServer {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl OwnServer {
    fn start_new() -> OwnServer {
        server();
        let bin = PathBuf::from(std::env::var("TEST_POSTGRES_BIN").expect("TEST_POSTGRES_BIN is set"));
        let dir = tempfile::tempdir().unwrap();
        if root() {
            Command::new("chown").arg("postgres").arg(dir.path()).status().unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = OwnServer { bin, data: dir.path().join("data"), port, _dir: dir };
        let init = server.run("initdb", &["-A", "trust", "-U", "postgres", "-D", server.data.to_str().unwrap()]);
        assert!(init, "initdb failed");
        server.start();
        server
    }

    fn run(&self, tool: &str, args: &[&str]) -> bool {
        let tool = self.bin.join(tool);
        let mut cmd = if root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(tool);
            c
        } else {
            Command::new(tool)
        };
        cmd.args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    fn start(&self) {
        let options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.data.parent().unwrap().display());
        let data = self.data.to_str().unwrap();
        let log = self.data.parent().unwrap().join("log");
        assert!(self.run("pg_ctl", &["-D", data, "-l", log.to_str().unwrap(), "-w", "-o", &options, "start"]));
    }

    fn stop(&self) {
        assert!(self.run("pg_ctl", &["-D", self.data.to_str().unwrap(), "-m", "fast", "-w", "stop"]));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.run("pg_ctl", &["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"]);
    }
}

/// Whether the tests run as root (initdb and postgres refuse to).
fn root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

#[tokio::test]
async fn d19_postgresql_stopped_under_load_loses_no_entry_and_stores_none_twice() {
    let pg = OwnServer::start_new();
    let database = new_postgres_database(&pg.url()).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("audit.spool").display().to_string();
    let env = [("AUDITGATE_DATABASE", database.as_str()), ("AUDITGATE_RECORDER__SPOOL", spool.as_str())];
    let app = spawn_app_with(&env, None).await;
    let (_, created) = call(&app, Method::POST, "/api/items/", json!({"v": 0})).await;
    let item = format!("/api/items/{}/", created["id"]);

    // Mutations before, during and after an outage longer than the store's
    // patience (its pool waits 5 s for a connection before a batch fails).
    let answered = std::sync::Mutex::new(0usize);
    let back = std::sync::atomic::AtomicBool::new(false);
    let load = async {
        let mut after = 0;
        for round in 0.. {
            let (status, _) = call(&app, Method::PATCH, &item, json!({ "v": round })).await;
            assert_eq!(status, 200, "fail_mode open: served while the store is down");
            *answered.lock().unwrap() += 1;
            if back.load(std::sync::atomic::Ordering::Relaxed) {
                after += 1;
                if after == 10 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let outage = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        pg.stop();
        tokio::time::sleep(Duration::from_secs(7)).await;
        // On a busy machine a request may spend the outage waiting for the
        // shared lock and its entry reach the writer only then: the store
        // stays down until a batch has failed over to the spool.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while metric(&app, "auditgate_entries_spooled_total").await == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        pg.start();
        back.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    tokio::join!(load, outage);
    let answered = *answered.lock().unwrap() + 1;
    // The app's own store reconnects; read through a fresh one.
    let store = Store::open(&database, false).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let entries = loop {
        let (found, _) = store.list(&Filter::default(), None, 1000).await.unwrap();
        if found.len() >= answered || tokio::time::Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(entries.len(), answered, "every answered mutation has exactly one entry");
    let mut request_ids: Vec<&str> = entries.iter().map(|e| e.request_id.as_str()).collect();
    request_ids.sort_unstable();
    request_ids.dedup();
    assert_eq!(request_ids.len(), answered, "no entry twice");
    assert!(store.verify().await.unwrap().ok);
    let spooled = metric(&app, "auditgate_entries_spooled_total").await;
    assert!(spooled > 0, "the outage was real: entries went to the spool");
    assert!(metric(&app, "auditgate_shared_lock_errors_total").await > 0, "turns taken without the store's lock");
    assert_eq!(metric(&app, "auditgate_spool_entries").await, 0);
}

/// Every column a filter reads must say what its entry says: a row whose
/// entry is intact but whose column lies (so that a filter would hide or
/// misfile it) is named by `verify`, whichever column it is.
#[tokio::test]
async fn verify_names_a_row_whose_any_filter_column_lies() {
    server();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&test_database(dir.path()).await, false).await.unwrap();
    let entries = crate::store::sealed(&mut auditgate::entry::Chain::resume(None), "gw-1", 0..4);
    store.insert_batch(&entries).await.unwrap();
    assert!(store.verify().await.unwrap().ok);
    let victim = entries[1].entry.id.as_str();
    execute(&store, "CREATE TABLE saved AS SELECT * FROM audit_log WHERE id = $1", &[victim]).await;
    for (column, lie) in [
        ("timestamp", "'2000-01-01T00:00:00.000000Z'"),
        ("instance", "'gw-2'"),
        ("action", "'read'"),
        ("outcome", "'error'"),
        ("status", "599"),
        ("configuration", "'forged'"),
        ("resource_type", "'nothing'"),
        ("resource_id", "NULL"),
        ("actor", "'nobody'"),
        ("client_ip_key", "'\\x00'::bytea"),
        ("path", "'/elsewhere'"),
        ("changes", "'[]'"),
        ("unapplied", "7"),
        ("hash", "'0'"),
    ] {
        execute(&store, &format!("UPDATE audit_log SET {column} = {lie} WHERE id = $1"), &[victim]).await;
        let verdict = store.verify().await.unwrap();
        assert_eq!(verdict.first_bad.as_deref(), Some(victim), "a lying `{column}` went unnoticed");
        execute(&store, &format!("UPDATE audit_log a SET {column} = s.{column} FROM saved s WHERE a.id = s.id"), &[])
            .await;
        assert!(store.verify().await.unwrap().ok, "restored `{column}`");
    }
}

/// A turn given up while waiting for the store's lock (the client left)
/// leaves no lock behind: the waiting session is granted it later, and
/// must let it go, or the resource stays locked for every instance.
#[tokio::test]
async fn a_lock_wait_given_up_leaves_no_lock_behind() {
    server();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&test_database(dir.path()).await, false).await.unwrap();
    let held = store.lock_resource("user", "1").await.unwrap();
    let gave_up = tokio::time::timeout(Duration::from_millis(200), store.lock_resource("user", "1")).await;
    assert!(gave_up.is_err(), "the resource was held");
    drop(held);
    let again = tokio::time::timeout(Duration::from_secs(3), store.lock_resource("user", "1")).await;
    assert!(again.is_ok(), "the resource stayed locked after a waiter gave up");
    // And from another instance's pool.
    drop(again);
    let other = Store::open(&test_database(dir.path()).await, false).await.unwrap();
    let from_other = tokio::time::timeout(Duration::from_secs(3), other.lock_resource("user", "1")).await;
    assert!(from_other.is_ok(), "another instance cannot lock the resource");
}

/// An instance holds as many resources at once as it has turns (64, each
/// on a connection of the locks' pool), all at the same time; one more
/// waits for a turn instead of failing, and takes the first let go.
#[tokio::test]
async fn every_turn_holds_a_resource_at_once_and_one_more_waits_for_a_turn() {
    const TURNS: usize = 64;
    server();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&test_database(dir.path()).await, false).await.unwrap();
    let held: Vec<_> = futures_util::future::join_all((0..TURNS).map(|n| {
        let store = store.clone();
        async move { store.lock_resource("user", &n.to_string()).await }
    }))
    .await
    .into_iter()
    .map(|lock| lock.expect("a turn failed to lock").expect("PostgreSQL locks across instances"))
    .collect();
    let mut one_more = Box::pin(store.lock_resource("user", "more"));
    let early = tokio::time::timeout(Duration::from_millis(1500), &mut one_more).await;
    assert!(early.is_err(), "a lock past the turns did not wait: {:?}", early.map(|r| r.map(|l| l.is_some())));
    drop(held);
    let late = tokio::time::timeout(Duration::from_secs(5), one_more).await;
    assert!(matches!(late, Ok(Ok(Some(_)))), "the waiting lock never got its turn");
}

/// D19 with `fail_mode = "closed"`: PostgreSQL stopped and no spool to
/// take entries, so changes are answered 503 and never reach the upstream
/// while reads keep working and `/readyz` says the store is unavailable;
/// once the server is back, changes flow and the entry that was waiting is
/// stored.
#[tokio::test]
async fn d19_postgresql_stopped_with_fail_closed_refuses_changes_the_upstream_never_sees() {
    let pg = OwnServer::start_new();
    let database = new_postgres_database(&pg.url()).await;
    let dir = tempfile::tempdir().unwrap();
    // A spool in a directory removed once started: it can take nothing.
    let (gone, spool) = crate::durability::vanishing_spool(&dir);
    let env = [
        ("AUDITGATE_DATABASE", database.as_str()),
        ("AUDITGATE_FAIL_MODE", "closed"),
        ("AUDITGATE_RECORDER__SPOOL", spool.as_str()),
    ];
    let app = spawn_app_with(&env, None).await;
    std::fs::remove_dir_all(gone).unwrap();
    let (_, created) = call(&app, Method::POST, "/api/items/", json!({"v": "kept"})).await;
    let item = format!("/api/items/{}/", created["id"]);
    wait_entries(&app.store, 1).await;

    pg.stop();
    // The first change is forwarded; its entry then has nowhere to go.
    let (status, _) = call(&app, Method::PATCH, &item, json!({"v": "first"})).await;
    assert_eq!(status, 200);
    wait_metric(&app, "auditgate_recorder_stuck", 1).await;
    let (status, body) = call(&app, Method::PATCH, &item, json!({"v": "refused"})).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("the audit trail cannot record this change now")));
    let (status, seen) = call(&app, Method::GET, &item, Value::Null).await;
    assert_eq!((status, &seen["v"]), (200, &json!("first")), "reads work; the upstream never saw the refused change");
    // Not ready while the store does not answer, ready again once it does.
    let ready = get(&app.query("/readyz")).await;
    assert_eq!((ready.status().as_u16(), ready.body().as_ref()), (503, &b"{\"status\":\"store unavailable\"}\n"[..]));

    pg.start();
    wait_metric(&app, "auditgate_recorder_stuck", 0).await;
    assert_eq!(get(&app.query("/readyz")).await.status(), 200);
    let (status, _) = call(&app, Method::PATCH, &item, json!({"v": "second"})).await;
    assert_eq!(status, 200);
    let store = Store::open(&database, false).await.unwrap();
    let entries = wait_entries(&store, 3).await;
    let after: Vec<&Value> = entries.iter().filter_map(|e| e.after.as_ref()).map(|a| &a["v"]).collect();
    assert_eq!(after, [&json!("kept"), &json!("first"), &json!("second")]);
    assert_eq!(metric(&app, "auditgate_entries_dropped_total").await, 0);
}

/// `durability = "sync"` holds on a server whose default is
/// `synchronous_commit = off`: the store's sessions set it on.
#[tokio::test]
async fn a_power_safe_store_commits_synchronously_whatever_the_servers_default() {
    server();
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(dir.path()).await;
    let name = database.rsplit('/').next().unwrap().to_string();
    let setup = Store::open(&database, false).await.unwrap();
    execute(&setup, &format!("ALTER DATABASE {name} SET synchronous_commit = off"), &[]).await;
    let show = |store: Store| async move {
        let Store::Postgres(pg) = store else { unreachable!() };
        let value: String = sqlx::query_scalar("SHOW synchronous_commit").fetch_one(pg.pool()).await.unwrap();
        value
    };
    assert_eq!(show(Store::open(&database, false).await.unwrap()).await, "off", "the server's default");
    assert_eq!(show(Store::open(&database, true).await.unwrap()).await, "on");
}

/// A second instance started under a name already running against the
/// database is refused with a message naming it (its entries would
/// interleave with the first's under one chain name); once the first stops,
/// the name is free again.
#[tokio::test]
async fn a_second_instance_under_a_running_instances_name_is_refused() {
    server();
    let dir = tempfile::tempdir().unwrap();
    let database = test_database(dir.path()).await;
    let upstream = spawn_upstream();
    let spool = dir.path().join("a.spool").display().to_string();
    let env = [
        ("AUDITGATE_DATABASE", database.as_str()),
        ("AUDITGATE_INSTANCE", "gw-same"),
        ("AUDITGATE_RECORDER__SPOOL", spool.as_str()),
    ];
    let first = spawn_app_to(&upstream.url(), &env, None).await;
    let flags = vec![
        ("upstream", upstream.url()),
        ("listen", "127.0.0.1:0".to_string()),
        ("query_listen", "127.0.0.1:0".to_string()),
        ("rules", dir.path().display().to_string()),
        ("database", database.clone()),
        ("instance", "gw-same".to_string()),
    ];
    let config = || {
        let spool = dir.path().join("b.spool").display().to_string();
        auditgate::config::Config::load(None, [("AUDITGATE_RECORDER__SPOOL".to_string(), spool)], &flags).unwrap()
    };
    let Err(refused) = auditgate::App::build(config()).await else { panic!("the name was taken") };
    assert!(refused.to_string().contains("instance `gw-same` is already running"), "{refused}");
    assert!(refused.is_usage(), "a configuration mistake: exit 64");
    first.stop().await;
    // The server ends a closed session's locks as its backend exits, a
    // moment after the client closed it.
    let mut again = auditgate::App::build(config()).await;
    for _ in 0..40 {
        if again.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        again = auditgate::App::build(config()).await;
    }
    assert!(again.is_ok(), "free again once the first stopped");
}

/// A batch large enough to be written as two halves at once (see
/// `PgStore::insert_batch`) commits its first half first: when the second
/// half fails at its commit, the first stays stored with the head on its
/// last entry (a shorter chain, never a gap) and the batch written again
/// stores the rest, each once; when the first half fails, neither is.
#[tokio::test]
async fn a_large_batch_failing_at_commit_leaves_the_start_of_its_chain() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&test_database(dir.path()).await, false).await.unwrap();
    // A check deferred to commit that refuses the ids listed in `refused`.
    for sql in [
        "CREATE TABLE refused (id TEXT PRIMARY KEY)",
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF EXISTS (SELECT 1 FROM refused WHERE id = NEW.id) THEN RAISE EXCEPTION 'refused %', NEW.id; END IF; \
         RETURN NULL; END $$",
        "CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON audit_log DEFERRABLE INITIALLY DEFERRED \
         FOR EACH ROW EXECUTE FUNCTION refuse()",
    ] {
        execute(&store, sql, &[]).await;
    }
    let count = || async { stored_entries(&store).await.len() };
    let mut chain = auditgate::entry::Chain::resume(None);
    let batch = crate::store::sealed(&mut chain, "gw", 0..400);
    execute(&store, "INSERT INTO refused VALUES ($1)", &[&batch[300].entry.id]).await;
    assert!(store.insert_batch(&batch).await.is_err());
    assert_eq!(count().await, 200, "the first half alone is stored");
    assert_eq!(store.last_hash("gw").await.unwrap().as_deref(), Some(batch[199].entry.hash.as_str()));
    let verdict = store.verify().await.unwrap();
    assert_eq!((verdict.ok, verdict.checked), (true, 200), "{verdict:?}");

    execute(&store, "DELETE FROM refused", &[]).await;
    store.insert_batch(&batch).await.unwrap();
    assert_eq!(count().await, 400);
    let verdict = store.verify().await.unwrap();
    assert_eq!((verdict.ok, verdict.checked), (true, 400), "{verdict:?}");

    let next = crate::store::sealed(&mut chain, "gw", 400..800);
    execute(&store, "INSERT INTO refused VALUES ($1)", &[&next[10].entry.id]).await;
    assert!(store.insert_batch(&next).await.is_err());
    assert_eq!(count().await, 400, "the second half was stored without the first");
    assert_eq!(store.last_hash("gw").await.unwrap().as_deref(), Some(batch[399].entry.hash.as_str()));
}

/// Instances commit independently: an entry another instance seals before,
/// but commits after, one the stream already sent still reaches the
/// stream (it looks back on a shared store).
#[tokio::test]
async fn the_stream_sends_an_entry_another_instance_commits_late() {
    server();
    let app = spawn_app().await;
    let mut events = crate::live::Events::open(&app, "", None).await;
    call(&app, Method::POST, "/api/items/", json!({"name": "now"})).await;
    let (sent, _) = events.next(Duration::from_secs(10)).await.expect("the new entry is streamed");
    // Sealed a second ago by "other", committed only now.
    let mut late = wait_entries(&app.store, 1).await.remove(0);
    late.instance = "other".into();
    let at = std::time::SystemTime::now() - Duration::from_secs(1);
    let sealed = auditgate::entry::Chain::resume(None).seal_at(late, at);
    assert!(sealed.entry.id < sent, "older than what the stream sent");
    app.store.insert_batch(std::slice::from_ref(&sealed)).await.unwrap();
    let (id, entry) = events.next(Duration::from_secs(10)).await.expect("the late entry is streamed");
    assert_eq!((id.as_str(), entry["instance"].as_str()), (sealed.entry.id.as_str(), Some("other")));
}

/// docs/sinks.md on a shared store: two instances configured with the same sink;
/// one forwards it (both chains, each in order, each entry once), and when
/// it stops the other takes over from the stored cursor.
#[tokio::test]
async fn one_instance_forwards_a_shared_sink_and_the_other_takes_over() {
    use crate::sinks::{changes, collector, hook_sink, ids};
    let (hook, ca, _pki) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let upstream = spawn_upstream();
    let database = test_database(dir.path()).await;
    let sink = hook_sink(&hook, &ca, "");
    let spool = |name: &str| dir.path().join(name).display().to_string();
    let (spool_a, spool_b) = (spool("a.spool"), spool("b.spool"));
    let env = |instance: &'static str, spool: &str| {
        let owned = [database.clone(), instance.to_string(), spool.to_string(), sink.clone()];
        let keys = ["AUDITGATE_DATABASE", "AUDITGATE_INSTANCE", "AUDITGATE_RECORDER__SPOOL", "AUDITGATE_SINK"];
        keys.into_iter().zip(owned).collect::<Vec<(&str, String)>>()
    };
    let (env_a, env_b) = (env("gw-a", &spool_a), env("gw-b", &spool_b));
    fn refs<'a>(e: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        e.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
    let a = spawn_app_to(&upstream.url(), &refs(&env_a), None).await;
    let b = spawn_app_to(&upstream.url(), &refs(&env_b), None).await;
    changes(&a, 3).await;
    changes(&b, 3).await;
    let got = hook.wait_accepted(6).await;
    let stored = wait_entries(&a.store, 6).await;
    let mut want: Vec<String> = stored.iter().map(|e| e.id.clone()).collect();
    let mut sent = ids(&got);
    for instance in ["gw-a", "gw-b"] {
        let of = |ids: &[String]| {
            ids.iter()
                .filter(|id| stored.iter().any(|e| &e.id == *id && e.instance == instance))
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(of(&sent), of(&want), "{instance}'s chain in order");
    }
    sent.sort();
    want.sort();
    assert_eq!(sent, want, "each entry once");
    let sent_by = |app: &TestApp| {
        let url = app.query("/metrics");
        async move {
            let text = String::from_utf8(get(&url).await.body().to_vec()).unwrap();
            let line = text.lines().find(|l| l.starts_with("auditgate_sink_sent_total{sink=\"hook\"}")).unwrap();
            line.rsplit(' ').next().unwrap().parse::<u64>().unwrap()
        }
    };
    let (by_a, by_b) = (sent_by(&a).await, sent_by(&b).await);
    assert_eq!((by_a.min(by_b), by_a + by_b), (0, 6), "one instance forwards");
    // The forwarding one stops; the other takes the sink over.
    let (forwarder, other) = if by_a > 0 { (a, b) } else { (b, a) };
    forwarder.stop().await;
    changes(&other, 2).await;
    let got = hook.wait_accepted(8).await;
    let mut sent = ids(&got);
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), 8, "each entry once, the two new ones included");
    assert_eq!(ids(&got).len(), 8);
    other.stop().await;
}

/// The probe's case (issue 32, item 8): PostgreSQL stopped, changes
/// answered 200, the spool quiet for a second, then SIGKILL: every change
/// must be in the spool by then (stored or spooled within moments of its
/// answer, never held in memory behind a store that takes 5 s to fail),
/// so the next start replays them all.
#[tokio::test]
async fn d19_changes_answered_while_postgresql_is_down_survive_a_sigkill_once_the_spool_is_quiet() {
    let pg = OwnServer::start_new();
    let database = new_postgres_database(&pg.url()).await;
    let upstream = spawn_upstream();
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("audit.spool");
    let start = || crate::binary::serve_in(dir.path(), &database, &upstream.url(), &[]);
    let (mut child, addr) = start();
    let patch = |round: usize| {
        let req = http::Request::patch(format!("http://{addr}/api/items/1/"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(format!("{{\"v\": {round}}}"))))
            .unwrap();
        async move { send(&client(), req).await.status().as_u16() }
    };
    let create = http::Request::post(format!("http://{addr}/api/items/"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from("{\"v\": 0}")))
        .unwrap();
    assert_eq!(send(&client(), create).await.status(), 201);
    let store = Store::open(&database, false).await.unwrap();
    wait_entries(&store, 1).await;
    store.close().await;

    pg.stop();
    let lines = || std::fs::read_to_string(&spool).map_or(0, |t| t.lines().count());
    for round in 1..=20 {
        assert_eq!(patch(round).await, 200, "fail_mode open: served while the store is down");
        // Each change is in the spool a moment after its answer (3 s here,
        // far more than the promise of twice flush_interval, for a busy CI
        // machine), whatever the store is doing: a batch never waits in
        // memory behind a store call that takes 5 s to fail.
        let answered = std::time::Instant::now();
        while lines() < round {
            assert!(answered.elapsed() < Duration::from_secs(3), "change {round} is not in the spool 3 s on");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // The spool quiet for a second, as the probe waited.
    let (mut seen, mut since) = (lines(), std::time::Instant::now());
    while since.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if lines() != seen {
            (seen, since) = (lines(), std::time::Instant::now());
        }
    }
    child.sigkill();
    assert_eq!(seen, 20, "every change answered is in the spool before the kill");

    pg.start();
    let (mut child, _) = start();
    let store = Store::open(&database, false).await.unwrap();
    let entries = wait_entries(&store, 21).await;
    let versions: Vec<i64> = entries[1..].iter().map(|e| e.after.as_ref().unwrap()["v"].as_i64().unwrap()).collect();
    assert_eq!(versions, (1..=20).collect::<Vec<_>>(), "each change once, in order");
    assert!(store.verify().await.unwrap().ok);
    assert_eq!(child.sigterm().await, Some(0));
    store.close().await;
}
