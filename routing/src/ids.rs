//! Identifiers of docs/protocol.md#identifiers: systems (`INSTANCE/CLASS/CODE/SUBSYSTEM`) and services
//! (`SYSTEM/SERVICE[/VERSION]`).
//!
//! One segment grammar for every part keeps ids safe to embed in URL paths, SAN URIs,
//! metric labels and file names without escaping: 1–64 characters of `[A-Za-z0-9._-]`,
//! never `.` or `..`.

use std::fmt;

/// Longest identifier segment accepted.
pub const MAX_SEGMENT_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("expected {expected} segments separated by '/', found {found}")]
    SegmentCount { expected: &'static str, found: usize },
    #[error("segment {index} is empty")]
    EmptySegment { index: usize },
    #[error("segment {index} is longer than {MAX_SEGMENT_LEN} characters")]
    SegmentTooLong { index: usize },
    #[error("segment {index} has a character outside [A-Za-z0-9._-]")]
    BadCharacter { index: usize },
    #[error("segment {index} is '.' or '..'")]
    DotSegment { index: usize },
    #[error("member class must be upper-case letters (e.g. GOV, COM, NGO)")]
    BadMemberClass,
}

/// Checks one identifier segment against the common grammar.
pub fn check_segment(segment: &str, index: usize) -> Result<(), IdError> {
    if segment.is_empty() {
        return Err(IdError::EmptySegment { index });
    }
    if segment.len() > MAX_SEGMENT_LEN {
        return Err(IdError::SegmentTooLong { index });
    }
    if segment == "." || segment == ".." {
        return Err(IdError::DotSegment { index });
    }
    if !segment.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err(IdError::BadCharacter { index });
    }
    Ok(())
}

fn check_segments(id: &str, counts: &[usize], expected: &'static str) -> Result<usize, IdError> {
    let found = id.split('/').count();
    if !counts.contains(&found) {
        return Err(IdError::SegmentCount { expected, found });
    }
    for (index, segment) in id.split('/').enumerate() {
        check_segment(segment, index)?;
    }
    let class = id.split('/').nth(1).unwrap_or_default();
    if !class.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(IdError::BadMemberClass);
    }
    Ok(found)
}

/// A registered information system: the unit that holds a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SystemId(Box<str>);

impl SystemId {
    pub fn parse(id: &str) -> Result<Self, IdError> {
        check_segments(id, &[4], "4 (INSTANCE/CLASS/CODE/SUBSYSTEM)")?;
        Ok(Self(id.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SAN URI that binds a certificate to this system.
    pub fn san_uri(&self) -> String {
        format!("{}{}", crate::ids::SAN_URI_PREFIX, self.0)
    }

    /// The last segment, used for file names of the dev PKI.
    pub fn short_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

/// Prefix of the SAN URI binding a certificate to a system (docs/protocol.md#identifiers).
pub const SAN_URI_PREFIX: &str = "urn:qaqpa:";

impl fmt::Display for SystemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A service offered by a system: `SYSTEM/SERVICE[/VERSION]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(Box<str>);

impl ServiceId {
    pub fn parse(id: &str) -> Result<Self, IdError> {
        check_segments(id, &[5, 6], "5 or 6 (SYSTEM/SERVICE[/VERSION])")?;
        Ok(Self(id.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The providing system: the first four segments.
    pub fn system(&self) -> SystemId {
        let end = nth_slash(&self.0, 4).unwrap_or(self.0.len());
        SystemId(self.0[..end].into())
    }

    /// `SYSTEM/SERVICE`, the key the route table is probed with.
    pub fn unversioned(&self) -> &str {
        match nth_slash(&self.0, 5) {
            Some(end) => &self.0[..end],
            None => &self.0,
        }
    }

    pub fn version(&self) -> Option<&str> {
        nth_slash(&self.0, 5).map(|i| &self.0[i + 1..])
    }
}

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Byte index of the n-th '/' (1-based) in `s`.
pub(crate) fn nth_slash(s: &str, n: usize) -> Option<usize> {
    s.bytes().enumerate().filter(|&(_, b)| b == b'/').nth(n - 1).map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_ids() {
        let id = SystemId::parse("KZ/GOV/970240000123/gbd-fl").unwrap();
        assert_eq!(id.san_uri(), "urn:qaqpa:KZ/GOV/970240000123/gbd-fl");
        assert_eq!(id.short_name(), "gbd-fl");
        assert_eq!(
            SystemId::parse("KZ/GOV/970240000123"),
            Err(IdError::SegmentCount { expected: "4 (INSTANCE/CLASS/CODE/SUBSYSTEM)", found: 3 })
        );
        assert_eq!(SystemId::parse("KZ/GOV//x"), Err(IdError::EmptySegment { index: 2 }));
        assert_eq!(SystemId::parse("KZ/GOV/1/.."), Err(IdError::DotSegment { index: 3 }));
        assert_eq!(SystemId::parse("KZ/GOV/1/a b"), Err(IdError::BadCharacter { index: 3 }));
        assert_eq!(SystemId::parse("KZ/GOV/1/a%2f"), Err(IdError::BadCharacter { index: 3 }));
        assert_eq!(SystemId::parse("KZ/gov/1/a"), Err(IdError::BadMemberClass));
        let long = format!("KZ/GOV/1/{}", "a".repeat(65));
        assert_eq!(SystemId::parse(&long), Err(IdError::SegmentTooLong { index: 3 }));
    }

    #[test]
    fn service_ids() {
        let v = ServiceId::parse("KZ/GOV/000000000001/population-register/person/v1").unwrap();
        assert_eq!(v.system().as_str(), "KZ/GOV/000000000001/population-register");
        assert_eq!(v.unversioned(), "KZ/GOV/000000000001/population-register/person");
        assert_eq!(v.version(), Some("v1"));
        let u = ServiceId::parse("KZ/GOV/000000000001/population-register/person").unwrap();
        assert_eq!(u.unversioned(), u.as_str());
        assert_eq!(u.version(), None);
        assert!(ServiceId::parse("KZ/GOV/1/sys").is_err());
        assert!(ServiceId::parse("KZ/GOV/1/sys/a/b/c").is_err());
    }
}
