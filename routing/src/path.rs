//! Splitting a REST request path (`/r1/{service id}/{rest}`) into the service key the
//! route table is probed with and the remainder forwarded to the provider.
//!
//! The remainder is forwarded exactly as received (never decoded and re-encoded), so
//! this module only rejects what must never reach a provider: malformed percent
//! escapes and dot segments that would climb out of the provider's base path.

use crate::ids::{check_segment, nth_slash, IdError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path has an invalid percent escape")]
    BadPercentEncoding,
    #[error("path has a '.' or '..' segment")]
    DotSegment,
    #[error("path has a control character, a backslash or a NUL")]
    BadCharacter,
    #[error("service id in the path is malformed: {0}")]
    BadServiceId(IdError),
}

/// The parts of a REST path after the `/r1/` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestTarget<'p> {
    /// `SYSTEM/SERVICE`: five segments, the route-table key.
    pub key: &'p str,
    /// Everything after the key, empty or starting with '/'. May begin with a version.
    pub tail: &'p str,
}

/// Splits and validates `path` (the part after `/r1/`, without the query).
pub fn split_rest_path(path: &str) -> Result<RestTarget<'_>, PathError> {
    check_raw_path(path)?;
    let (key, tail) = match nth_slash(path, 5) {
        Some(i) => (&path[..i], &path[i..]),
        None => (path, ""),
    };
    let segments = key.split('/').count();
    if segments != 5 {
        return Err(PathError::BadServiceId(IdError::SegmentCount {
            expected: "5 or 6 (SYSTEM/SERVICE[/VERSION])",
            found: segments,
        }));
    }
    for (index, segment) in key.split('/').enumerate() {
        check_segment(segment, index).map_err(PathError::BadServiceId)?;
    }
    Ok(RestTarget { key, tail })
}

/// Rejects malformed escapes, control characters and dot segments, literal or
/// percent-encoded (`%2e%2E`), anywhere in the path.
fn check_raw_path(path: &str) -> Result<(), PathError> {
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadPercentEncoding)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(PathError::BadPercentEncoding);
                }
                let decoded = (hex_value(hex[0]) << 4) | hex_value(hex[1]);
                if decoded < 0x20 || decoded == 0x7f || decoded == b'\\' {
                    return Err(PathError::BadCharacter);
                }
                i += 3;
            }
            b if b < 0x20 || b == 0x7f || b == b'\\' => return Err(PathError::BadCharacter),
            _ => i += 1,
        }
    }
    for segment in path.split('/') {
        if is_dot_segment(segment) {
            return Err(PathError::DotSegment);
        }
    }
    Ok(())
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// True for `.`, `..` and their percent-encoded spellings; allocation-free because
/// it runs on every segment of every request.
fn is_dot_segment(segment: &str) -> bool {
    fn dot(s: &[u8]) -> bool {
        s == b"." || s.eq_ignore_ascii_case(b"%2e")
    }
    let b = segment.as_bytes();
    match b.len() {
        1 | 3 => dot(b),
        2 => b == b"..",
        4 => (dot(&b[..1]) && dot(&b[1..])) || (dot(&b[..3]) && dot(&b[3..])),
        6 => dot(&b[..3]) && dot(&b[3..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_key_and_tail() {
        let t = split_rest_path("KZ/GOV/1/reg/person/v1/900101300123").unwrap();
        assert_eq!(t.key, "KZ/GOV/1/reg/person");
        assert_eq!(t.tail, "/v1/900101300123");
        let t = split_rest_path("KZ/GOV/1/reg/person").unwrap();
        assert_eq!(t.tail, "");
        let t = split_rest_path("KZ/GOV/1/reg/person/").unwrap();
        assert_eq!(t.tail, "/");
    }

    #[test]
    fn rejects_hostile_paths() {
        use PathError::*;
        let cases: &[(&str, PathError)] = &[
            ("KZ/GOV/1/reg/person/%zz", BadPercentEncoding),
            ("KZ/GOV/1/reg/person/%4", BadPercentEncoding),
            ("KZ/GOV/1/reg/person/%", BadPercentEncoding),
            ("KZ/GOV/1/reg/person/v1/../../admin", DotSegment),
            ("KZ/GOV/1/reg/person/v1/%2e%2E/x", DotSegment),
            ("KZ/GOV/1/reg/person/v1/.%2e", DotSegment),
            ("KZ/GOV/1/reg/person/./x", DotSegment),
            ("KZ/GOV/1/reg/person/%2E", DotSegment),
            ("KZ/GOV/1/reg/person/%2e.", DotSegment),
            ("KZ/GOV/1/reg/person/v1/..", DotSegment),
            ("KZ/GOV/../reg/person/v1", DotSegment),
            ("KZ/GOV/1/reg/person/a%00b", BadCharacter),
            ("KZ/GOV/1/reg/person/a%5cb", BadCharacter),
            ("KZ/GOV/1/reg/pe\\rson", BadCharacter),
            (
                "KZ/GOV/1/reg",
                BadServiceId(IdError::SegmentCount { expected: "5 or 6 (SYSTEM/SERVICE[/VERSION])", found: 4 }),
            ),
            ("KZ/GOV/1/r%41g/person", BadServiceId(IdError::BadCharacter { index: 3 })),
            ("KZ/GOV//reg/person", BadServiceId(IdError::EmptySegment { index: 2 })),
        ];
        for (path, want) in cases {
            assert_eq!(split_rest_path(path).as_ref(), Err(want), "{path}");
        }
    }

    #[test]
    fn keeps_valid_escapes_in_tail() {
        let t = split_rest_path("KZ/GOV/1/reg/person/v1/a%20b%2Fc...d").unwrap();
        assert_eq!(t.tail, "/v1/a%20b%2Fc...d");
        for ok in ["...", "..a", "%2e%2e%2e", "%2ex", ".%2f", "a."] {
            assert!(split_rest_path(&format!("KZ/GOV/1/reg/person/{ok}")).is_ok(), "{ok}");
        }
    }
}
