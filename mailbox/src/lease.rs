//! The lease index: what is ready, leased, waiting and blocked, per queue, in memory.
//! Pure (no I/O, no clock: callers pass the time), so each rule is unit-tested here;
//! the embedded store rebuilds it from disk at start and keeps it beside the file.

use std::collections::{BTreeSet, HashMap};

use crate::{Depth, Kind, MessageMeta, Queue};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ready,
    /// Taken; back when the lease ends (Unix ms).
    Leased(i64),
    /// Waiting for a retry delay (Unix ms).
    Delayed(i64),
    /// An ordered message behind an earlier one of its (client, service).
    Blocked,
    /// Out of attempts, being moved to the dead letters.
    Dying,
}

pub(crate) struct Entry {
    queue: Queue,
    pub(crate) seq: u64,
    owner: String,
    kind: Kind,
    group: Option<(String, String)>,
    state: State,
    attempts: u32,
}

/// A message just taken: its id, where it is stored, which delivery this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Leased {
    pub(crate) key: u128,
    pub(crate) seq: u64,
    pub(crate) attempts: u32,
}

/// What a pass over the timers found: (id, seq) of leases that ran out, and of
/// messages out of attempts.
#[derive(Default)]
pub(crate) struct Expired {
    pub(crate) timed_out: Vec<(u128, u64)>,
    pub(crate) dead: Vec<(u128, u64)>,
    pub(crate) readied: usize,
}

/// What is where, in memory; rebuilt from the store at start.
#[derive(Default)]
pub(crate) struct Index {
    entries: HashMap<u128, Entry>,
    ready: HashMap<Queue, BTreeSet<(u64, u128)>>,
    timers: BTreeSet<(i64, u128)>,
    /// Ordered (client, service) pairs: their messages by seq; the first is the only one out.
    groups: HashMap<(String, String), BTreeSet<(u64, u128)>>,
    counts: HashMap<Queue, u64>,
    /// Dead letters kept (not indexed: counted for depth gauges).
    pub(crate) dead: u64,
}

impl Index {
    pub(crate) fn count(&self, queue: &Queue) -> u64 {
        self.counts.get(queue).copied().unwrap_or(0)
    }

    pub(crate) fn insert(&mut self, e: &MessageMeta) {
        let key = e.mid.as_u128();
        let queue = e.queue();
        // Looked up before `entry`, which would take an owned copy of the name on
        // every send, not only for a queue's first message.
        match self.counts.get_mut(&queue) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(queue.clone(), 1);
            }
        }
        let group = (e.ordered && e.kind == Kind::Request).then(|| (e.client.clone(), e.service.clone()));
        let mut state = State::Ready;
        if let Some(g) = &group {
            let members = self.groups.entry(g.clone()).or_default();
            members.insert((e.seq, key));
            if members.first() != Some(&(e.seq, key)) {
                state = State::Blocked;
            }
        }
        if state == State::Ready {
            match self.ready.get_mut(&queue) {
                Some(set) => {
                    set.insert((e.seq, key));
                }
                None => {
                    self.ready.insert(queue.clone(), BTreeSet::from([(e.seq, key)]));
                }
            }
        }
        self.entries.insert(
            key,
            Entry { queue, seq: e.seq, owner: e.owner(), kind: e.kind, group, state, attempts: e.attempts },
        );
    }

    pub(crate) fn owned(&self, key: u128, kind: Kind, owner: &str) -> Option<&Entry> {
        self.entries.get(&key).filter(|e| e.kind == kind && e.owner == owner && e.state != State::Dying)
    }

    /// A live message's state for its sender: (is it an answer, is it between push tries).
    pub(crate) fn state_of(&self, key: u128) -> Option<(Kind, bool)> {
        self.entries.get(&key).map(|e| (e.kind, matches!(e.state, State::Delayed(_))))
    }

    pub(crate) fn attempts(&self, key: u128) -> Option<(u64, u32)> {
        self.entries.get(&key).filter(|e| matches!(e.state, State::Leased(_))).map(|e| (e.seq, e.attempts))
    }

    fn unschedule(&mut self, key: u128, entry_state: State, queue: &Queue, seq: u64) {
        match entry_state {
            State::Ready => {
                if let Some(set) = self.ready.get_mut(queue) {
                    set.remove(&(seq, key));
                }
            }
            State::Leased(t) | State::Delayed(t) => {
                self.timers.remove(&(t, key));
            }
            State::Blocked | State::Dying => {}
        }
    }

    /// Removes the entry for `key` if it is still the message stored at `seq`.
    pub(crate) fn remove_at(&mut self, key: u128, seq: u64) -> Option<Entry> {
        if self.entries.get(&key)?.seq != seq {
            return None;
        }
        self.remove(key)
    }

    pub(crate) fn remove(&mut self, key: u128) -> Option<Entry> {
        let entry = self.entries.remove(&key)?;
        self.unschedule(key, entry.state, &entry.queue, entry.seq);
        if let Some(n) = self.counts.get_mut(&entry.queue) {
            *n = n.saturating_sub(1);
        }
        if let Some(g) = &entry.group {
            let next = self.groups.get_mut(g).and_then(|members| {
                members.remove(&(entry.seq, key));
                members.first().copied()
            });
            match next {
                Some((_, next)) => self.make_ready(next),
                None => {
                    self.groups.remove(g);
                }
            }
        }
        Some(entry)
    }

    fn make_ready(&mut self, key: u128) {
        let Some(entry) = self.entries.get_mut(&key) else { return };
        let (old, queue, seq) = (entry.state, entry.queue.clone(), entry.seq);
        if old == State::Ready {
            return;
        }
        entry.state = State::Ready;
        self.unschedule(key, old, &queue, seq);
        self.ready.entry(queue).or_default().insert((seq, key));
    }

    pub(crate) fn expire_now(&mut self, key: u128) {
        self.make_ready(key);
    }

    /// Leases up to `max` ready messages of the queues, oldest first per queue.
    pub(crate) fn lease(&mut self, queues: &[Queue], max: usize, until: i64) -> Vec<Leased> {
        let mut out = Vec::new();
        for queue in queues {
            while out.len() < max {
                let Some((_, key)) = self.ready.get_mut(queue).and_then(|set| set.pop_first()) else { break };
                let Some(entry) = self.entries.get_mut(&key) else { continue };
                entry.state = State::Leased(until);
                entry.attempts += 1;
                self.timers.insert((until, key));
                out.push(Leased { key, seq: entry.seq, attempts: entry.attempts });
            }
        }
        out
    }

    pub(crate) fn delay(&mut self, key: u128, until: i64) {
        let Some(entry) = self.entries.get_mut(&key) else { return };
        let (old, queue, seq) = (entry.state, entry.queue.clone(), entry.seq);
        entry.state = State::Delayed(until);
        self.unschedule(key, old, &queue, seq);
        self.timers.insert((until, key));
    }

    pub(crate) fn expire(&mut self, now: i64, max_attempts: u32) -> Expired {
        let mut out = Expired::default();
        while let Some(&(due, key)) = self.timers.first() {
            if due > now {
                break;
            }
            self.timers.pop_first();
            let Some(entry) = self.entries.get_mut(&key) else { continue };
            match entry.state {
                State::Leased(_) if entry.attempts >= max_attempts => {
                    entry.state = State::Dying;
                    out.dead.push((key, entry.seq));
                }
                State::Leased(_) => {
                    out.timed_out.push((key, entry.seq));
                    entry.state = State::Blocked;
                    self.make_ready(key);
                    out.readied += 1;
                }
                State::Delayed(_) => {
                    entry.state = State::Blocked;
                    self.make_ready(key);
                    out.readied += 1;
                }
                _ => {}
            }
        }
        out
    }

    pub(crate) fn depths(&self) -> Vec<Depth> {
        let mut by_queue: HashMap<&Queue, Depth> = HashMap::new();
        for entry in self.entries.values() {
            let d = by_queue.entry(&entry.queue).or_insert_with(|| Depth {
                queue: entry.queue.name().to_owned(),
                kind: match entry.kind {
                    Kind::Request => "requests",
                    Kind::Response => "responses",
                },
                ..Depth::default()
            });
            match entry.state {
                State::Ready => d.ready += 1,
                State::Leased(_) | State::Dying => d.in_flight += 1,
                State::Delayed(_) | State::Blocked => d.waiting += 1,
            }
        }
        let mut out: Vec<Depth> = by_queue.into_values().collect();
        out.sort_by(|a, b| (a.kind, &a.queue).cmp(&(b.kind, &b.queue)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(client: &str, id: &str, ordered: bool, seq: u64) -> MessageMeta {
        MessageMeta {
            mid: crate::mailbox_id(client, id),
            kind: Kind::Request,
            seq,
            client: client.into(),
            service: "KZ/GOV/1/prov/svc".into(),
            message_id: id.into(),
            path: String::new(),
            created: 0,
            headers: vec![],
            status: None,
            ordered,
            attempts: 0,
            history: vec![],
        }
    }

    const Q: fn() -> Queue = || Queue::Requests("KZ/GOV/1/prov/svc".into());

    #[test]
    fn ordered_pairs_release_one_message_at_a_time() {
        let mut ix = Index::default();
        let (a1, a2, b1) = (envelope("A", "1", true, 1), envelope("A", "2", true, 2), envelope("B", "1", true, 3));
        for e in [&a1, &a2, &b1] {
            ix.insert(e);
        }
        let leased = ix.lease(&[Q()], 10, 100);
        let keys: Vec<u128> = leased.iter().map(|l| l.key).collect();
        assert_eq!(keys, vec![a1.mid.as_u128(), b1.mid.as_u128()], "A's second waits behind its first");
        ix.remove(a1.mid.as_u128());
        assert_eq!(ix.lease(&[Q()], 10, 100), vec![Leased { key: a2.mid.as_u128(), seq: 2, attempts: 1 }]);
    }

    #[test]
    fn leases_expire_into_ready_then_into_the_dead_letters() {
        let mut ix = Index::default();
        let e = envelope("A", "1", false, 1);
        ix.insert(&e);
        let key = e.mid.as_u128();
        assert_eq!(ix.lease(&[Q()], 1, 100), vec![Leased { key, seq: 1, attempts: 1 }]);
        assert!(ix.lease(&[Q()], 1, 100).is_empty(), "a leased message is invisible");
        let x = ix.expire(99, 2);
        assert!(x.timed_out.is_empty() && x.dead.is_empty(), "not before the lease ends");
        let x = ix.expire(100, 2);
        assert_eq!(x.timed_out, vec![(key, 1)]);
        assert_eq!(ix.lease(&[Q()], 1, 200), vec![Leased { key, seq: 1, attempts: 2 }], "redelivered, second attempt");
        let x = ix.expire(200, 2);
        assert_eq!(x.dead, vec![(key, 1)], "out of attempts");
        assert!(ix.owned(key, Kind::Request, "KZ/GOV/1/prov").is_none(), "a dying message cannot be acked");
    }

    #[test]
    fn delayed_messages_wait_for_their_time() {
        let mut ix = Index::default();
        let e = envelope("A", "1", false, 1);
        ix.insert(&e);
        let key = e.mid.as_u128();
        ix.lease(&[Q()], 1, 100);
        ix.delay(key, 500);
        assert!(ix.expire(400, 5).readied == 0);
        assert!(ix.lease(&[Q()], 1, 1000).is_empty());
        assert_eq!(ix.expire(500, 5).readied, 1);
        assert_eq!(ix.lease(&[Q()], 1, 1000), vec![Leased { key, seq: 1, attempts: 2 }]);
        let d = ix.depths();
        assert_eq!((d[0].ready, d[0].in_flight, d[0].waiting), (0, 1, 0));
    }
}
