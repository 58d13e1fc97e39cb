//! Heap allocations per request on the pass-through path, counted by a
//! global allocator: auditgate in this process, the example upstream in its
//! own, and a client that reads and writes fixed buffers (it allocates
//! nothing per request). The limit is the figure in BENCHMARKS.md; a change
//! that adds work to every request shows here before it shows in a profile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use auditgate::App;
use auditgate::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// At most this many allocations per request passed through, on average
/// (BENCHMARKS.md, "Allocations per request"): two, and a few hundredths
/// for the background tasks that allocate while the requests run (the
/// store's pool, timers), more of them in a slow debug build.
const LIMIT: f64 = 2.05;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is handed unchanged to the system allocator; the
// counter is the only addition.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Sends `GET /` on `stream` and reads the whole answer (its length told by
/// `Content-Length`) into `buf`.
async fn get(stream: &mut TcpStream, buf: &mut [u8]) {
    stream.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n").await.unwrap();
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).await.unwrap();
        assert!(n > 0, "the proxy closed the connection");
        filled += n;
        let text = &buf[..filled];
        let Some(end) = text.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = std::str::from_utf8(&text[..end]).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        // Read without allocating: only the proxy's allocations are counted.
        let length: usize = head
            .lines()
            .find(|l| l.get(..15).is_some_and(|name| name.eq_ignore_ascii_case("content-length:")))
            .map(|l| l[15..].trim().parse().unwrap())
            .expect("the example upstream's `/` has a length");
        if filled >= end + 4 + length {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_request_passed_through_allocates_at_most_the_documented_number() {
    let exe = std::env::current_exe().unwrap();
    let upstream_bin: PathBuf = exe.parent().and_then(|d| d.parent()).unwrap().join("examples").join("upstream");
    let mut upstream = Command::new(&upstream_bin).stdout(Stdio::piped()).spawn().unwrap_or_else(|e| {
        panic!("cannot start {}: {e} (run `cargo build --examples` first)", upstream_bin.display())
    });
    let mut line = String::new();
    BufReader::new(upstream.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let upstream_addr = line.trim().strip_prefix("listening on ").unwrap().to_string();

    let dir = tempfile::tempdir().unwrap();
    let flags = vec![
        ("upstream", format!("http://{upstream_addr}")),
        ("listen", "127.0.0.1:0".to_string()),
        ("query_listen", "127.0.0.1:0".to_string()),
        ("rules", dir.path().display().to_string()),
        ("database", format!("sqlite://{}", dir.path().join("audit.db").display())),
    ];
    let spool = dir.path().join("audit.spool").display().to_string();
    // No reload of the audit configurations while counting (it allocates).
    let env =
        [("AUDITGATE_RECORDER__SPOOL".to_string(), spool), ("AUDITGATE_CONFIG_REFRESH".to_string(), "1h".to_string())];
    let config = Config::load(None, env, &flags).unwrap();
    let app = App::build(config).await.unwrap();
    let addr = app.proxy_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));

    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    // The first requests make the connections and fill the caches.
    for _ in 0..200 {
        get(&mut stream, &mut buf).await;
    }
    const REQUESTS: u64 = 2000;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..REQUESTS {
        get(&mut stream, &mut buf).await;
    }
    let per_request = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / REQUESTS as f64;
    println!("allocations per request passed through: {per_request:.2}");
    drop(stream);
    let _ = stop.send(());
    let _ = running.await;
    let _ = upstream.kill();
    let _ = upstream.wait();
    assert!(per_request <= LIMIT, "{per_request:.2} allocations per request, more than the {LIMIT} in BENCHMARKS.md");
    assert!(per_request >= 1.0, "{per_request:.2}: the allocator is not counting");
}
