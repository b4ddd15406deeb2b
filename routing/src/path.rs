//! Splitting a REST request path (`/r1/{service id}/{rest}`) into the service key the
//! route table is probed with and the remainder forwarded to the provider.
//!
//! The remainder is forwarded exactly as received (never decoded and re-encoded), so
//! this module rejects what must never reach a provider: malformed percent escapes,
//! dot segments that would climb out of the provider's base path, and every spelling
//! a provider (or a framework in front of it) may read as a different path than the
//! gateway routed and authorized: `;` path parameters (Tomcat and Spring drop
//! `..;/` to `../`), percent-encoded delimiters `/ . % \` (one decoding turns
//! `%2e%2e%2f` or `%252e` into a traversal), and escapes that decode to invalid or
//! overlong UTF-8 (`%c0%ae` is `.` to lenient decoders). A legitimate REST path
//! needs none of them.

use crate::ids::{check_segment, nth_slash, IdError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path has an invalid percent escape")]
    BadPercentEncoding,
    #[error("path has a '.' or '..' segment")]
    DotSegment,
    #[error("path has a control character, a backslash or a NUL")]
    BadCharacter,
    #[error("path has a ';' parameter")]
    PathParameter,
    #[error("path has a percent-encoded '/', '.', '%' or '\\'")]
    EncodedDelimiter,
    #[error("path has percent escapes that are not valid UTF-8")]
    BadUtf8,
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

/// Rejects malformed escapes, control characters, `;`, encoded delimiters, invalid
/// UTF-8 in escapes and dot segments anywhere in the path. Allocation-free: it runs
/// on every request.
fn check_raw_path(path: &str) -> Result<(), PathError> {
    let bytes = path.as_bytes();
    // The bytes of the current run of escapes that decode to non-ASCII, checked as
    // UTF-8 when the run ends (a multi-byte character spans several escapes).
    let mut utf8 = Utf8Run::default();
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
                if matches!(decoded, b'/' | b'.' | b'%') {
                    return Err(PathError::EncodedDelimiter);
                }
                if decoded >= 0x80 {
                    utf8.push(decoded)?;
                } else {
                    utf8.end()?;
                }
                i += 3;
            }
            b if b < 0x20 || b == 0x7f || b == b'\\' => return Err(PathError::BadCharacter),
            b';' => return Err(PathError::PathParameter),
            _ => {
                // A run of escapes ends at any literal byte (literal non-ASCII is
                // valid UTF-8 already: `path` is a `str`).
                utf8.end()?;
                i += 1;
            }
        }
    }
    utf8.end()?;
    for segment in path.split('/') {
        if is_dot_segment(segment) {
            return Err(PathError::DotSegment);
        }
    }
    Ok(())
}

/// Percent-decoded non-ASCII bytes waiting to form one UTF-8 character. A UTF-8
/// character is at most 4 bytes, so a run is checked character by character without
/// a buffer on the heap; `str::from_utf8` refuses overlong forms (`c0 ae`) and
/// surrogates.
#[derive(Default)]
struct Utf8Run {
    buf: [u8; 4],
    len: usize,
}

impl Utf8Run {
    fn push(&mut self, b: u8) -> Result<(), PathError> {
        if self.len == 0 {
            // Only a lead byte may start a character.
            if !(0xc2..=0xf4).contains(&b) {
                return Err(PathError::BadUtf8);
            }
        } else if b & 0xc0 != 0x80 {
            // Not a continuation: the previous character was cut short.
            return Err(PathError::BadUtf8);
        }
        self.buf[self.len] = b;
        self.len += 1;
        let want = match self.buf[0] {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            _ => 4,
        };
        if self.len == want {
            std::str::from_utf8(&self.buf[..self.len]).map_err(|_| PathError::BadUtf8)?;
            self.len = 0;
        }
        Ok(())
    }

    /// The run ends: no character may be left incomplete.
    fn end(&mut self) -> Result<(), PathError> {
        if self.len != 0 {
            return Err(PathError::BadUtf8);
        }
        Ok(())
    }
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
            ("KZ/GOV/1/reg/person/v1/%2e%2E/x", EncodedDelimiter),
            ("KZ/GOV/1/reg/person/v1/.%2e", EncodedDelimiter),
            ("KZ/GOV/1/reg/person/./x", DotSegment),
            ("KZ/GOV/1/reg/person/%2E", EncodedDelimiter),
            ("KZ/GOV/1/reg/person/%2e.", EncodedDelimiter),
            // Issue 15: spellings a provider may decode into another path.
            ("KZ/GOV/1/reg/person/v1/..;/admin", PathParameter),
            ("KZ/GOV/1/reg/person/v1/x;jsessionid=1", PathParameter),
            ("KZ/GOV/1/reg/person/%2e%2e;x", EncodedDelimiter),
            ("KZ/GOV/1/reg/person/..%2f", EncodedDelimiter),
            ("KZ/GOV/1/reg/person/a%2Fb", EncodedDelimiter),
            ("KZ/GOV/1/reg/person/%252e", EncodedDelimiter),
            ("KZ/GOV/1/reg/person/a%5Cb", BadCharacter),
            ("KZ/GOV/1/reg/person/%c0%ae", BadUtf8),
            ("KZ/GOV/1/reg/person/%C0%AE%C0%AE/x", BadUtf8),
            ("KZ/GOV/1/reg/person/%e0%80%ae", BadUtf8),
            ("KZ/GOV/1/reg/person/%80", BadUtf8),
            ("KZ/GOV/1/reg/person/%c3", BadUtf8),
            ("KZ/GOV/1/reg/person/%c3x", BadUtf8),
            ("KZ/GOV/1/reg/person/%ed%a0%80", BadUtf8),
            ("KZ/GOV/1/reg/person/%f5%80%80%80", BadUtf8),
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
        let t = split_rest_path("KZ/GOV/1/reg/person/v1/a%20b%3Fc...d").unwrap();
        assert_eq!(t.tail, "/v1/a%20b%3Fc...d");
        // Non-ASCII text (a Kazakh name) percent-encoded as UTF-8 is fine.
        for ok in ["...", "..a", "a.", "%D0%90%D0%B9%D0%B3%D2%AF%D0%BB", "%e2%82%ac", "%f0%9f%98%80", "a%20b"] {
            assert!(split_rest_path(&format!("KZ/GOV/1/reg/person/{ok}")).is_ok(), "{ok}");
        }
    }
}
