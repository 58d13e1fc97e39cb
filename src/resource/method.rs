//! The effective method (docs/rules.md): a `POST` that frameworks treat as another
//! method through an override header or a `_method` form field.

use http::{HeaderMap, HeaderName, Method};

use super::extract::form_value;

/// Override headers that common frameworks honour on `POST`.
pub const OVERRIDE_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

pub use crate::config::OverridePolicy;

/// A method override the proxy refuses to guess about.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OverrideError {
    #[error("method override headers disagree")]
    Conflicting,
    #[error("method override is not a valid method")]
    Invalid,
    #[error("method overrides are not accepted here")]
    Rejected,
}

/// The method a request is classified by, given its override headers and the
/// policy. Overrides count only on `POST`, as in the frameworks that honour
/// them, and only when they name a method that changes state: an override
/// to `GET`, `HEAD`, `OPTIONS`, `TRACE` or `CONNECT` would make the request
/// less audited than its wire method, while the app may ignore it and act
/// on the `POST` (docs/rules.md).
pub fn effective_method(method: &Method, headers: &HeaderMap, policy: OverridePolicy) -> Result<Method, OverrideError> {
    let mut found: Option<Method> = None;
    for name in &OVERRIDE_HEADERS {
        for value in headers.get_all(name) {
            if policy == OverridePolicy::Reject {
                return Err(OverrideError::Rejected);
            }
            let parsed = value
                .to_str()
                .ok()
                .map(str::trim)
                .and_then(|v| Method::from_bytes(v.to_ascii_uppercase().as_bytes()).ok())
                .ok_or(OverrideError::Invalid)?;
            match &found {
                Some(prev) if *prev != parsed => return Err(OverrideError::Conflicting),
                _ => found = Some(parsed),
            }
        }
    }
    match found {
        Some(m) if *method == Method::POST && policy == OverridePolicy::Honour && changes_state(&m) => Ok(m),
        _ => Ok(method.clone()),
    }
}

/// The `_method` field of a urlencoded form body, if any. Like a header, it
/// counts for classification only when it `changes_state`.
pub fn form_method_override(body: &[u8]) -> Option<Method> {
    let value = form_value(body, "_method")?;
    Method::from_bytes(value.trim().to_ascii_uppercase().as_bytes()).ok()
}

/// False for the methods that never change state: an override naming one
/// is not honoured for classification.
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::CONNECT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn honours_override_on_post_only() {
        let h = headers(&[("x-http-method-override", "delete")]);
        assert_eq!(effective_method(&Method::POST, &h, OverridePolicy::Honour), Ok(Method::DELETE));
        assert_eq!(effective_method(&Method::GET, &h, OverridePolicy::Honour), Ok(Method::GET));
        assert_eq!(effective_method(&Method::POST, &h, OverridePolicy::Strip), Ok(Method::POST));
        assert_eq!(effective_method(&Method::POST, &h, OverridePolicy::Reject), Err(OverrideError::Rejected));
    }

    #[test]
    fn an_override_never_makes_a_request_less_audited() {
        for name in ["x-http-method", "x-method-override", "x-http-method-override"] {
            for read in ["GET", "head", "OPTIONS", "TRACE", "CONNECT"] {
                let mut h = HeaderMap::new();
                h.insert(HeaderName::from_static(name), HeaderValue::from_static(read));
                assert_eq!(
                    effective_method(&Method::POST, &h, OverridePolicy::Honour),
                    Ok(Method::POST),
                    "{name}: {read}"
                );
            }
        }
        let purge = headers(&[("x-http-method", "PURGE")]);
        assert_eq!(effective_method(&Method::POST, &purge, OverridePolicy::Honour).unwrap().as_str(), "PURGE");
        assert!(!changes_state(&Method::GET) && !changes_state(&Method::HEAD) && !changes_state(&Method::OPTIONS));
        assert!(changes_state(&Method::DELETE) && changes_state(&Method::POST));
    }

    #[test]
    fn conflicting_overrides_are_refused() {
        let h = headers(&[("x-http-method", "DELETE"), ("x-method-override", "PATCH")]);
        assert_eq!(effective_method(&Method::POST, &h, OverridePolicy::Honour), Err(OverrideError::Conflicting));
        let same = headers(&[("x-http-method", "DELETE"), ("x-method-override", "delete")]);
        assert_eq!(effective_method(&Method::POST, &same, OverridePolicy::Honour), Ok(Method::DELETE));
        let bad = headers(&[("x-http-method", "DE LETE")]);
        assert_eq!(effective_method(&Method::POST, &bad, OverridePolicy::Honour), Err(OverrideError::Invalid));
    }

    #[test]
    fn form_field() {
        assert_eq!(form_method_override(b"name=x&_method=put"), Some(Method::PUT));
        assert_eq!(form_method_override(b"name=x"), None);
    }
}
