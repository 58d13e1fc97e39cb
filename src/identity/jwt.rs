//! JWT signature verification (docs/trail.md): an HS256 secret, an RS256/ES256
//! public key (PEM), or a JWKS file, loaded once at start. A token's result
//! is cached until it expires, so a client reusing its token pays for one
//! signature check. `alg: none`, a bad signature, a key of another family,
//! an expired or malformed token: not verified.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// Tokens remembered at most; the cache starts over when full.
const CACHE_CAPACITY: usize = 10_000;

/// The configured verification keys.
pub struct JwtVerifier {
    keys: Vec<Key>,
    /// Token → (verified, until when the answer holds, Unix seconds).
    cache: Mutex<HashMap<Box<str>, (bool, u64)>>,
}

struct Key {
    kid: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier").field("keys", &self.keys.len()).finish_non_exhaustive()
    }
}

const HMAC: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const RSA: [Algorithm; 6] =
    [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::PS384, Algorithm::PS512];
const EC: [Algorithm; 2] = [Algorithm::ES256, Algorithm::ES384];

impl JwtVerifier {
    /// Verifies HS256/384/512 signatures with a shared secret.
    pub fn secret(secret: &str) -> JwtVerifier {
        JwtVerifier::new(vec![Key {
            kid: None,
            key: DecodingKey::from_secret(secret.as_bytes()),
            algorithms: HMAC.into(),
        }])
    }

    /// Verifies with a PEM public key: RSA (RS*, PS*) or EC (ES256/384).
    pub fn public_key_pem(pem: &[u8]) -> Result<JwtVerifier, String> {
        let key = match (DecodingKey::from_rsa_pem(pem), DecodingKey::from_ec_pem(pem)) {
            (Ok(rsa), _) => Key { kid: None, key: rsa, algorithms: RSA.into() },
            (_, Ok(ec)) => Key { kid: None, key: ec, algorithms: EC.into() },
            (Err(e), Err(_)) => return Err(format!("not an RSA or EC public key in PEM: {e}")),
        };
        Ok(JwtVerifier::new(vec![key]))
    }

    /// Verifies with the keys of a JWKS document, chosen by `kid`.
    pub fn jwks(json: &[u8]) -> Result<JwtVerifier, String> {
        let set: JwkSet = serde_json::from_slice(json).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {:?}: {e}", jwk.common.key_id))?;
            let algorithms = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => RSA.into(),
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => EC.into(),
                jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_) => HMAC.into(),
                jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
                _ => return Err(format!("key {:?}: unsupported key type", jwk.common.key_id)),
            };
            keys.push(Key { kid: jwk.common.key_id.clone(), key, algorithms });
        }
        if keys.is_empty() {
            return Err("the JWKS document holds no keys".into());
        }
        Ok(JwtVerifier::new(keys))
    }

    fn new(keys: Vec<Key>) -> JwtVerifier {
        JwtVerifier { keys, cache: Mutex::new(HashMap::new()) }
    }

    /// Whether `token` carries a valid signature by a configured key and is
    /// within its validity (`exp`, `nbf`, when present).
    pub fn verify(&self, token: &str) -> bool {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if let Some(&(verified, until)) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(token)
            && now < until
        {
            return verified;
        }
        let (verified, until) = match self.check(token) {
            Some(exp) => (true, exp.unwrap_or(u64::MAX)),
            // A refusal holds as long as the token exists.
            None => (false, u64::MAX),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(token.into(), (verified, until));
        verified
    }

    /// `Some(exp)` when the signature and times check out.
    fn check(&self, token: &str) -> Option<Option<u64>> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let key = match &header.kid {
            Some(kid) => self.keys.iter().find(|k| k.kid.as_deref() == Some(kid.as_str())),
            None => self.keys.first().filter(|_| self.keys.len() == 1),
        }?;
        if !key.algorithms.contains(&header.alg) {
            return None;
        }
        let mut validation = Validation::new(header.alg);
        validation.algorithms = key.algorithms.clone();
        // The app's token: its audience is the app's business; `exp` and
        // `nbf` are checked when present.
        validation.required_spec_claims.clear();
        validation.validate_aud = false;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation).ok()?;
        Some(data.claims.get("exp").and_then(serde_json::Value::as_u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    fn hs256(secret: &str, claims: serde_json::Value) -> String {
        encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn a_shared_secret_verifies_its_own_tokens_only() {
        let v = JwtVerifier::secret("s3cret");
        assert!(v.verify(&hs256("s3cret", json!({"sub": "alice"}))));
        assert!(v.verify(&hs256("s3cret", json!({"sub": "alice", "exp": now() + 600}))));
        // Twice: the cached answer.
        let good = hs256("s3cret", json!({"sub": "bob", "exp": now() + 600}));
        assert!(v.verify(&good) && v.verify(&good));
        assert!(!v.verify(&hs256("other", json!({"sub": "alice"}))));
        assert!(!v.verify(&hs256("s3cret", json!({"sub": "alice", "exp": now() - 3600}))));
        assert!(!v.verify(&hs256("s3cret", json!({"sub": "alice", "nbf": now() + 3600}))));
        assert!(!v.verify("not.a.token"));
        assert!(!v.verify(""));
    }

    #[test]
    fn alg_none_and_a_tampered_payload_are_refused() {
        let v = JwtVerifier::secret("s3cret");
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        use base64::Engine;
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(r#"{"sub":"admin"}"#));
        assert!(!v.verify(&none));
        let good = hs256("s3cret", json!({"sub": "alice"}));
        let parts: Vec<&str> = good.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], b64(r#"{"sub":"admin"}"#), parts[2]);
        assert!(!v.verify(&forged));
    }

    #[test]
    fn bad_key_material_is_refused_at_start() {
        assert!(JwtVerifier::public_key_pem(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n").is_err());
        assert!(JwtVerifier::jwks(b"{\"keys\": []}").is_err());
        assert!(JwtVerifier::jwks(b"[]").is_err());
    }
}
