//! The stable error codes of docs/protocol.md#errors. Clients and operators key on these strings in
//! faults, problem+json bodies, `X-Road-Error` headers, metrics and monitoring
//! records, so a code, once published, never changes its spelling or meaning.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadRequest,
    UnknownService,
    UnknownMessage,
    AccessDenied,
    IdentityMismatch,
    BadSignature,
    Replay,
    TooLarge,
    BadXml,
    RateLimited,
    QuotaExhausted,
    UpstreamUnavailable,
    UpstreamTimeout,
    Overloaded,
    Internal,
    LogUnavailable,
    StoreUnavailable,
    LimiterUnavailable,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 18] = [
        Self::BadRequest,
        Self::UnknownService,
        Self::UnknownMessage,
        Self::AccessDenied,
        Self::IdentityMismatch,
        Self::BadSignature,
        Self::Replay,
        Self::TooLarge,
        Self::BadXml,
        Self::RateLimited,
        Self::QuotaExhausted,
        Self::UpstreamUnavailable,
        Self::UpstreamTimeout,
        Self::Overloaded,
        Self::Internal,
        Self::LogUnavailable,
        Self::StoreUnavailable,
        Self::LimiterUnavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "client.bad_request",
            Self::UnknownService => "client.unknown_service",
            Self::UnknownMessage => "client.unknown_message",
            Self::AccessDenied => "client.access_denied",
            Self::IdentityMismatch => "client.identity_mismatch",
            Self::BadSignature => "client.bad_signature",
            Self::Replay => "client.replay",
            Self::TooLarge => "client.too_large",
            Self::BadXml => "client.bad_xml",
            Self::RateLimited => "client.rate_limited",
            Self::QuotaExhausted => "client.quota_exhausted",
            Self::UpstreamUnavailable => "server.upstream_unavailable",
            Self::UpstreamTimeout => "server.upstream_timeout",
            Self::Overloaded => "server.overloaded",
            Self::Internal => "server.internal",
            Self::LogUnavailable => "server.log_unavailable",
            Self::StoreUnavailable => "server.store_unavailable",
            Self::LimiterUnavailable => "server.limiter_unavailable",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// The HTTP status that carries this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest | Self::BadXml => 400,
            Self::BadSignature => 401,
            Self::AccessDenied | Self::IdentityMismatch => 403,
            Self::UnknownService | Self::UnknownMessage => 404,
            Self::Replay => 409,
            Self::TooLarge => 413,
            Self::RateLimited | Self::QuotaExhausted => 429,
            Self::Internal => 500,
            Self::UpstreamUnavailable => 502,
            Self::Overloaded | Self::LogUnavailable | Self::StoreUnavailable | Self::LimiterUnavailable => 503,
            Self::UpstreamTimeout => 504,
        }
    }

    /// A short human title, the same for every occurrence of the code.
    pub fn title(self) -> &'static str {
        match self {
            Self::BadRequest => "The request is malformed",
            Self::UnknownService => "No such service is registered",
            Self::UnknownMessage => "No such message waits for this system",
            Self::AccessDenied => "The client is not on the service's access list",
            Self::IdentityMismatch => "The claimed client is not the certificate's system",
            Self::BadSignature => "The message signature is missing or invalid",
            Self::Replay => "The message was already received or is stale",
            Self::TooLarge => "The message exceeds a size limit",
            Self::BadXml => "The XML is malformed or not allowed",
            Self::RateLimited => "Too many requests",
            Self::QuotaExhausted => "The quota for this period is used up",
            Self::UpstreamUnavailable => "The service provider is unreachable",
            Self::UpstreamTimeout => "The service provider did not answer in time",
            Self::Overloaded => "The gateway is overloaded",
            Self::Internal => "Internal gateway error",
            Self::LogUnavailable => {
                "The message log cannot write; the gateway refuses rather than answer off the record"
            }
            Self::StoreUnavailable => "The shared message store (NATS JetStream) is unavailable; retry later",
            Self::LimiterUnavailable => "The shared rate limiter (Redis) is unavailable; retry later",
        }
    }

    /// Whether the fault lies with the client (SOAP `Client`/`Sender`) or the server.
    pub fn is_client_fault(self) -> bool {
        self.as_str().starts_with("client.")
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate {code}");
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            let status = code.http_status();
            if code.is_client_fault() {
                assert!((400..500).contains(&status), "{code} → {status}");
            } else {
                assert!((500..600).contains(&status), "{code} → {status}");
            }
        }
        assert_eq!(ErrorCode::parse("client.nope"), None);
    }
}
