//! Where a node finds the cluster's Redis: one `redis://` server, or the master
//! that Redis Sentinel names (`redis+sentinel://host:port,host:port/master`), asked
//! again at every (re)connection so a failover moves the node to the new master.

use std::time::Duration;

/// The scheme of a Sentinel URL.
pub const SENTINEL_SCHEME: &str = "redis+sentinel://";

/// A URL the limits backend and the replay guard accept.
pub fn is_redis_url(url: &str) -> bool {
    url.starts_with("redis://") || url.starts_with("rediss://") || parse_sentinel(url).is_ok()
}

/// (sentinel addresses as `redis://host:port`, master name) of a Sentinel URL.
pub fn parse_sentinel(url: &str) -> Result<(Vec<String>, String), String> {
    let rest = url.strip_prefix(SENTINEL_SCHEME).ok_or("not a redis+sentinel:// URL")?;
    let (hosts, master) = rest.split_once('/').ok_or("redis+sentinel://HOST:PORT[,HOST:PORT…]/MASTER")?;
    let master = master.trim_end_matches('/');
    if master.is_empty() || !master.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Err(format!("{master:?} is not a master name"));
    }
    let mut sentinels = Vec::new();
    for host in hosts.split(',').map(str::trim) {
        let (name, port) = host.rsplit_once(':').ok_or_else(|| format!("{host:?}: HOST:PORT"))?;
        if name.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!("{host:?}: HOST:PORT"));
        }
        sentinels.push(format!("redis://{host}"));
    }
    Ok((sentinels, master.to_owned()))
}

/// A Redis server as configured.
pub enum RedisTarget {
    Direct(redis::Client),
    Sentinel(tokio::sync::Mutex<redis::sentinel::SentinelClient>),
}

impl RedisTarget {
    pub fn open(url: &str) -> Result<Self, String> {
        if url.starts_with(SENTINEL_SCHEME) {
            let (sentinels, master) = parse_sentinel(url)?;
            let client = redis::sentinel::SentinelClient::build(
                sentinels,
                master,
                None,
                redis::sentinel::SentinelServerType::Master,
            )
            .map_err(|e| e.to_string())?;
            return Ok(Self::Sentinel(tokio::sync::Mutex::new(client)));
        }
        redis::Client::open(url).map(Self::Direct).map_err(|e| e.to_string())
    }

    /// Whether a connection should be made anew after a failure (the master may
    /// have moved).
    pub fn follows_failover(&self) -> bool {
        matches!(self, Self::Sentinel(_))
    }

    /// A client of the server to write to now: for Sentinel, the master the
    /// sentinels name at this moment (bounded by `timeout`).
    pub async fn client(&self, timeout: Duration) -> Result<redis::Client, String> {
        match self {
            Self::Direct(client) => Ok(client.clone()),
            Self::Sentinel(sentinel) => {
                tokio::time::timeout(timeout, async { sentinel.lock().await.async_get_client().await })
                    .await
                    .map_err(|_| "asking the sentinels for the master timed out".to_owned())?
                    .map_err(|e| format!("sentinel: {e}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_name_their_sentinels_and_master() {
        let (s, m) = parse_sentinel("redis+sentinel://10.0.0.1:26379,sentinel-2:26380/qaqpa").unwrap();
        assert_eq!(
            (s, m.as_str()),
            (vec!["redis://10.0.0.1:26379".to_owned(), "redis://sentinel-2:26380".to_owned()], "qaqpa")
        );
        for bad in [
            "redis+sentinel://10.0.0.1:26379",
            "redis+sentinel://10.0.0.1:26379/",
            "redis+sentinel://10.0.0.1/m",
            "redis+sentinel://:26379/m",
            "redis+sentinel://a:1,,b:2/m",
            "redis+sentinel://a:1/m m",
        ] {
            assert!(parse_sentinel(bad).is_err(), "{bad}");
            assert!(!is_redis_url(bad), "{bad}");
        }
        assert!(is_redis_url("redis://127.0.0.1:6379") && is_redis_url("redis+sentinel://a:1/m"));
    }
}
