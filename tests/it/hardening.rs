//! The hardening catalogue (HARDENING.md), one test per case, named after
//! it: a raw client, the recording upstream, and the entries written.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// True when the server closes `stream` within `limit` (reading what it sends).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn b10_silent_and_partial_connections_are_closed_after_header_read_timeout_on_both_ports() {
    let app = spawn_app_with(&[("AUDITGATE_LIMITS__HEADER_READ_TIMEOUT", "500ms")], None).await;
    for addr in [app.addr, app.query_addr] {
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut partial = TcpStream::connect(addr).await.unwrap();
        partial.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        // A head trickled a byte at a time is no better.
        let mut trickle = TcpStream::connect(addr).await.unwrap();
        let trickling = tokio::spawn(async move {
            for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: yes\r\n" {
                if trickle.write_all(&[*b]).await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            closed_within(&mut trickle, Duration::from_secs(5)).await
        });
        assert!(closed_within(&mut silent, Duration::from_secs(5)).await, "{addr}: a silent connection stayed open");
        assert!(closed_within(&mut partial, Duration::from_secs(5)).await, "{addr}: a partial head stayed open");
        assert!(trickling.await.unwrap(), "{addr}: a trickled head stayed open");
    }
    assert_still_serving(&app).await;
    assert_eq!(get(&app.query("/healthz")).await.status(), 200);
}

#[tokio::test]
async fn b12_silent_connections_beyond_max_connections_do_not_keep_a_client_out() {
    let app = spawn_app_with(
        &[("AUDITGATE_LIMITS__MAX_CONNECTIONS", "50"), ("AUDITGATE_LIMITS__HEADER_READ_TIMEOUT", "60s")],
        None,
    )
    .await;
    for addr in [app.addr, app.query_addr] {
        let mut silent = Vec::new();
        for _ in 0..60 {
            silent.push(TcpStream::connect(addr).await.unwrap());
        }
        let path = if addr == app.addr { "/" } else { "/healthz" };
        let res = tokio::time::timeout(Duration::from_secs(5), get(&format!("http://{addr}{path}")))
            .await
            .unwrap_or_else(|_| panic!("{addr}: a client waited behind silent connections"));
        assert_eq!(res.status(), 200);
        // The ones idle the longest made room: the first are closed.
        assert!(closed_within(&mut silent[0], Duration::from_secs(2)).await, "{addr}");
        assert!(!closed_within(&mut silent[59], Duration::from_millis(200)).await, "{addr}: the newest was closed");
    }
}
