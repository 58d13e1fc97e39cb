//! `Upgrade: websocket` is tunnelled: handshake and frames pass untouched.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// A masked client frame (RFC 6455 §5.2).
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut out = vec![0x80 | opcode];
    if payload.len() < 126 {
        out.push(0x80 | payload.len() as u8);
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

async fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await.unwrap();
    let mut len = usize::from(head[1] & 0x7f);
    if len == 126 {
        len = usize::from(stream.read_u16().await.unwrap());
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.unwrap();
    (head[0] & 0x0f, payload)
}

#[tokio::test]
async fn a8_websocket_echo_through_the_proxy() {
    let app = spawn_app().await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let key = STANDARD.encode(b"auditgate-test!!");
    let handshake = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n",
        app.addr
    );
    stream.write_all(handshake.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = STANDARD.encode(sha.finalize()).to_ascii_lowercase();
    assert!(head.contains(&format!("sec-websocket-accept: {accept}")), "{head}");

    for message in ["hello", "ünïcödé", &"long ".repeat(100)] {
        stream.write_all(&frame(1, message.as_bytes())).await.unwrap();
        assert_eq!(read_frame(&mut stream).await, (1, message.as_bytes().to_vec()));
    }
    stream.write_all(&frame(2, &[0, 1, 2, 255])).await.unwrap();
    assert_eq!(read_frame(&mut stream).await, (2, vec![0, 1, 2, 255]));
    stream.write_all(&frame(8, &[3, 232])).await.unwrap();
    assert_eq!(read_frame(&mut stream).await.0, 8);
    assert_still_serving(&app).await;
}
