//! Which changed keys a reload cannot apply: they were read when the gateway started
//! (sockets bound, stores opened, background tasks set up). A reload still swaps
//! everything else, and names these so the operator knows a restart is due.

use super::{Config, ListenerConfig, DEFAULT_REPLAY_CAPACITY, DEFAULT_REPLAY_WINDOW};

pub fn restart_needed(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut check = |changed: bool, key: &'static str| {
        if changed {
            keys.push(key);
        }
    };
    // TLS files are not here: a reload re-reads them for every running listener.
    let sockets = |listeners: &[ListenerConfig]| -> Vec<_> {
        listeners.iter().map(|l| (l.name.clone(), l.address, l.http1, l.http2, l.http3, l.max_connections)).collect()
    };
    check(sockets(&running.listeners) != sockets(&new.listeners), "listener");
    check(sockets(running.admin.as_slice()) != sockets(new.admin.as_slice()), "admin");
    // The per-connection limits live in the listeners' HTTP builders; `max_body_bytes`
    // and `max_connections_per_client` are read per request and do reload.
    let connection = |c: &Config| {
        let l = &c.limits;
        (
            l.max_header_bytes,
            l.max_headers,
            l.header_read_timeout,
            l.drain_timeout,
            l.body_idle_timeout,
            l.max_concurrent_streams,
            l.max_pending_resets,
        )
    };
    check(connection(running) != connection(new), "limits (all but max_body_bytes, max_connections_per_client)");
    check(running.node != new.node, "gateway.node");
    check(running.storage.data_dir != new.storage.data_dir, "storage.data_dir");
    check(running.storage.limits != new.storage.limits, "storage.limits");
    check(running.monitoring != new.monitoring, "monitoring");
    check(running.overload != new.overload, "overload");
    let (old, now) = (&running.mailbox, &new.mailbox);
    check(old.backend != now.backend, "mailbox.backend");
    check(old.visibility_timeout != now.visibility_timeout, "mailbox.visibility_timeout");
    check(old.max_attempts != now.max_attempts, "mailbox.max_attempts");
    check(old.backoff != now.backoff, "mailbox.retry_base/retry_max");
    check(old.dedupe_window != now.dedupe_window, "mailbox.dedupe_window");
    check(old.max_queue_depth != now.max_queue_depth, "mailbox.max_queue_depth");
    let replay = |c: &Config| {
        c.signatures
            .as_ref()
            .map_or((DEFAULT_REPLAY_WINDOW, DEFAULT_REPLAY_CAPACITY), |s| (s.replay_window, s.replay_capacity))
    };
    check(replay(running) != replay(new), "signatures.replay_window/replay_capacity");
    keys
}
