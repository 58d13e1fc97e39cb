//! Path normalisation for classification: the resource a path names, the way
//! an upstream router would read it, whatever spelling the client chose.
//!
//! Empty segments (`//`) are dropped, `.` and `..` resolved, `;params`
//! stripped, and percent-encoded unreserved characters decoded; `%2F` stays
//! encoded inside its segment, as routers keep it.

/// A normalised path: its segments and whether it ended with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath {
    pub segments: Vec<String>,
    pub trailing_slash: bool,
}

impl NormalPath {
    /// Normalises the path part of a request target (no query).
    pub fn parse(path: &str) -> Self {
        let mut segments: Vec<String> = Vec::new();
        let raw: Vec<&str> = path.split('/').collect();
        let mut trailing_slash = path.len() > 1 && path.ends_with('/');
        for (i, seg) in raw.iter().enumerate() {
            let seg = seg.split(';').next().unwrap_or("");
            let seg = decode_unreserved(seg);
            let last = i + 1 == raw.len();
            match seg.as_str() {
                "" => {}
                "." => trailing_slash |= last,
                ".." => {
                    segments.pop();
                    trailing_slash |= last;
                }
                _ => segments.push(seg),
            }
        }
        if segments.is_empty() {
            trailing_slash = false;
        }
        NormalPath { segments, trailing_slash }
    }

    /// The path as a string: `/a/b` or `/a/b/`.
    pub fn to_path(&self) -> String {
        join(&self.segments, self.trailing_slash)
    }
}

/// Joins segments into a path with a leading `/` and an optional trailing one.
pub fn join<S: AsRef<str>>(segments: &[S], trailing_slash: bool) -> String {
    let mut out = String::with_capacity(segments.iter().map(|s| s.as_ref().len() + 1).sum::<usize>() + 1);
    for seg in segments {
        out.push('/');
        out.push_str(seg.as_ref());
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    out
}

/// Decodes `%XX` escapes of unreserved characters (RFC 3986 §2.3) and leaves
/// every other escape as it was.
fn decode_unreserved(seg: &str) -> String {
    if !seg.contains('%') {
        return seg.to_string();
    }
    let bytes = seg.as_bytes();
    let mut out = String::with_capacity(seg.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            let c = (h << 4 | l) as char;
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~') {
                out.push(c);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i] as char);
        i += 1;
    }
    out
}

/// Escapes what a path segment cannot hold.
pub fn encode_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes every `%XX` escape, for values shown in the trail (ids).
pub fn percent_decode(value: &str) -> String {
    if !value.contains('%') {
        return value.to_string();
    }
    String::from_utf8_lossy(&percent_decode_bytes(value.as_bytes())).into_owned()
}

/// The bytes every `%XX` escape of `bytes` stands for.
pub fn percent_decode_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(NormalPath::parse(input).to_path(), expected, "{input}");
    }

    #[test]
    fn ids_are_escaped_as_a_path_segment() {
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(encode_segment("0b9e-x_1.~:@!$&'()*+,;="), "0b9e-x_1.~:@!$&'()*+,;=");
        assert_eq!(encode_segment("é%?#"), "%C3%A9%25%3F%23");
        assert_eq!(percent_decode(&encode_segment("a b/é%")), "a b/é%");
    }

    #[test]
    fn normalises_like_a_router() {
        check("/", "/");
        check("", "/");
        check("/api/v1/users/5/", "/api/v1/users/5/");
        check("/api//v1///users/5", "/api/v1/users/5");
        check("/api/v1/groups/../users/5", "/api/v1/users/5");
        check("/api/v1/./users/5/.", "/api/v1/users/5/");
        check("/users;jsessionid=x/5", "/users/5");
        check("/%75sers/5", "/users/5");
        check("/users/a%2Fb", "/users/a%2Fb");
        check("/../../etc", "/etc");
        check("/users/5%", "/users/5%");
    }

    #[test]
    fn decodes_values() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
