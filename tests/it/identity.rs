//! Identity end to end (docs/trail.md, docs/security.md C17): JWT signatures checked with
//! an ES256 public key or a JWKS file, `actor_verified` telling the truth
//! for good, forged, `alg: none` and expired tokens; the whoami URL for
//! cookie-session apps, cached per credential.

use std::time::{SystemTime, UNIX_EPOCH};

use auditgate::entry::AuditEntry;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::audit::wait_entries;
use crate::helpers::*;

/// A P-256 key pair made by `openssl`: (private PKCS#8 PEM, public PEM path).
fn ec_keys(dir: &std::path::Path, name: &str) -> (Vec<u8>, std::path::PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let run = |args: &[&str]| assert!(std::process::Command::new("openssl").args(args).status().unwrap().success());
    run(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", private.to_str().unwrap()]);
    run(&["pkey", "-in", private.to_str().unwrap(), "-pubout", "-out", public.to_str().unwrap()]);
    (std::fs::read(&private).unwrap(), public)
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

async fn patch_with(app: &TestApp, authorization: &str, path: &str) -> u16 {
    let req = Request::builder()
        .method(Method::PATCH)
        .uri(app.url(path))
        .header("authorization", authorization)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json!({"v": 1}).to_string())))
        .unwrap();
    send(&client(), req).await.status().as_u16()
}

async fn create(app: &TestApp) -> String {
    let req = Request::post(app.url("/api/items/"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from("{}")))
        .unwrap();
    let body: Value = serde_json::from_slice(send(&client(), req).await.body()).unwrap();
    format!("/api/items/{}/", body["id"])
}

fn verdicts(entries: &[AuditEntry]) -> Vec<(String, String, bool)> {
    entries[1..]
        .iter()
        .map(|e| (e.actor.clone(), serde_json::json!(e.actor_source).as_str().unwrap().to_string(), e.actor_verified))
        .collect()
}

#[tokio::test]
async fn c17_an_es256_key_verifies_jwts_and_actor_verified_tells_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = ec_keys(dir.path(), "app");
    let (other_private, _) = ec_keys(dir.path(), "attacker");
    let app = spawn_app_with(&[("AUDITGATE_ACTOR__JWT_KEY", public.to_str().unwrap())], None).await;
    let item = create(&app).await;
    let sign = |key: &[u8], claims: Value| {
        let token = encode(&Header::new(Algorithm::ES256), &claims, &EncodingKey::from_ec_pem(key).unwrap()).unwrap();
        format!("Bearer {token}")
    };
    let none = format!(
        "Bearer {}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(r#"{"sub":"root"}"#)
    );
    for auth in [
        sign(&private, json!({"sub": "alice", "exp": now() + 600})),
        sign(&other_private, json!({"sub": "mallory"})),
        none,
        sign(&private, json!({"sub": "bob", "exp": now() - 600})),
        sign(&private, json!({"name": "no sub"})),
    ] {
        assert_eq!(patch_with(&app, &auth, &item).await, 200);
    }
    let entries = wait_entries(&app.store, 6).await;
    let expected = [
        ("alice", "jwt", true),
        ("mallory", "jwt", false),
        ("root", "jwt", false),
        ("bob", "jwt", false),
        ("anonymous", "anonymous", false),
    ];
    assert_eq!(verdicts(&entries), expected.map(|(a, s, v)| (a.to_string(), s.to_string(), v)));
}

#[tokio::test]
async fn a_jwks_file_picks_the_key_by_kid() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = json!({"keys": [
        {"kty": "oct", "kid": "k1", "k": URL_SAFE_NO_PAD.encode("first-secret")},
        {"kty": "oct", "kid": "k2", "k": URL_SAFE_NO_PAD.encode("second-secret")},
    ]});
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, jwks.to_string()).unwrap();
    let app = spawn_app_with(&[("AUDITGATE_ACTOR__JWKS_FILE", file.to_str().unwrap())], None).await;
    let item = create(&app).await;
    let sign = |kid: Option<&str>, secret: &str, sub: &str| {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_string);
        let token = encode(&header, &json!({"sub": sub}), &EncodingKey::from_secret(secret.as_bytes())).unwrap();
        format!("Bearer {token}")
    };
    for auth in [
        sign(Some("k2"), "second-secret", "carol"),
        sign(Some("k1"), "second-secret", "dave"),
        sign(None, "first-secret", "erin"),
        sign(Some("k9"), "first-secret", "frank"),
    ] {
        assert_eq!(patch_with(&app, &auth, &item).await, 200);
    }
    let entries = wait_entries(&app.store, 5).await;
    let verified: Vec<(String, bool)> = entries[1..].iter().map(|e| (e.actor.clone(), e.actor_verified)).collect();
    assert_eq!(
        verified,
        [("carol".into(), true), ("dave".into(), false), ("erin".into(), false), ("frank".into(), false)]
    );
}

#[tokio::test]
async fn a_bad_key_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key.pem");
    std::fs::write(&file, "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n").unwrap();
    let env = vec![("AUDITGATE_ACTOR__JWT_KEY".to_string(), file.display().to_string())];
    let err = auditgate::config::Config::load(None, env, &Vec::new()).unwrap_err().to_string();
    assert!(err.contains("actor.jwt_key") && err.contains("key.pem"), "{err}");
}

#[tokio::test]
async fn the_whoami_url_names_cookie_session_users_once_per_session() {
    let app = spawn_app_with(
        &[("AUDITGATE_ACTOR__WHOAMI_URL", "/me"), ("AUDITGATE_ACTOR__WHOAMI_FIELD", "/user/name")],
        None,
    )
    .await;
    let item = create(&app).await;
    let with_cookie = |cookie: &'static str| {
        let item = item.clone();
        let url = app.url(&item);
        async move {
            let req = Request::builder()
                .method(Method::PATCH)
                .uri(url)
                .header("cookie", cookie)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from("{\"v\": 2}")))
                .unwrap();
            send(&client(), req).await.status().as_u16()
        }
    };
    for cookie in ["session=greta", "session=greta", "session=greta", "theme=dark", "session=hugo"] {
        assert_eq!(with_cookie(cookie).await, 200);
    }
    // Basic credentials come before whoami in the default order.
    assert_eq!(patch_with(&app, "Basic aXJpczpwdw==", &item).await, 200);
    let entries = wait_entries(&app.store, 7).await;
    assert_eq!(
        verdicts(&entries),
        [
            ("greta".to_string(), "whoami".to_string(), true),
            ("greta".into(), "whoami".into(), true),
            ("greta".into(), "whoami".into(), true),
            ("anonymous".into(), "anonymous".into(), false),
            ("hugo".into(), "whoami".into(), true),
            ("iris".into(), "basic".into(), false),
        ]
    );
    // One call per session: greta's three requests asked once.
    let calls = get(&format!("{}/me/calls", app.upstream.as_ref().unwrap().url())).await;
    assert_eq!(String::from_utf8_lossy(calls.body()), "3");
}

#[tokio::test]
async fn an_rs256_key_and_a_shared_secret_verify_their_own_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("rsa.pem");
    let public = dir.path().join("rsa.pub.pem");
    let run = |args: &[&str]| assert!(std::process::Command::new("openssl").args(args).status().unwrap().success());
    run(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", private.to_str().unwrap()]);
    run(&["pkey", "-in", private.to_str().unwrap(), "-pubout", "-out", public.to_str().unwrap()]);
    let rsa = EncodingKey::from_rsa_pem(&std::fs::read(&private).unwrap()).unwrap();
    let app = spawn_app_with(&[("AUDITGATE_ACTOR__JWT_KEY", public.to_str().unwrap())], None).await;
    let item = create(&app).await;
    let good = encode(&Header::new(Algorithm::RS256), &json!({"sub": "ivan"}), &rsa).unwrap();
    // The classic confusion: HS256 "signed" with the public key as secret.
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "judy"}),
        &EncodingKey::from_secret(&std::fs::read(&public).unwrap()),
    )
    .unwrap();
    for token in [good, confused] {
        assert_eq!(patch_with(&app, &format!("Bearer {token}"), &item).await, 200);
    }
    let entries = wait_entries(&app.store, 3).await;
    let seen: Vec<(String, bool)> = entries[1..].iter().map(|e| (e.actor.clone(), e.actor_verified)).collect();
    assert_eq!(seen, [("ivan".into(), true), ("judy".into(), false)]);

    let app = spawn_app_with(
        &[("AUDITGATE_ACTOR__JWT_SECRET", "shared-s3cret"), ("AUDITGATE_ACTOR__JWT_CLAIM", "username")],
        None,
    )
    .await;
    let item = create(&app).await;
    for secret in ["shared-s3cret", "guess"] {
        let token = encode(
            &Header::new(Algorithm::HS256),
            &json!({"username": "kim"}),
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap();
        assert_eq!(patch_with(&app, &format!("Bearer {token}"), &item).await, 200);
    }
    let entries = wait_entries(&app.store, 3).await;
    let seen: Vec<(String, bool)> = entries[1..].iter().map(|e| (e.actor.clone(), e.actor_verified)).collect();
    assert_eq!(seen, [("kim".into(), true), ("kim".into(), false)]);
}
