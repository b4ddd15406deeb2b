use super::*;
use crate::pki::DevCa;

struct Key {
    key: SigningKey,
    chain: Vec<Vec<u8>>,
}

fn key(name: &str) -> Key {
    let now = time::OffsetDateTime::now_utc();
    let ca = DevCa::generate(name, now).unwrap();
    let pair = ca.issue_server(&["gateway"], now).unwrap();
    Key { key: SigningKey::from_pem(pair.key_pem.as_bytes()).unwrap(), chain: vec![pair.cert_der().unwrap().to_vec()] }
}

/// A log of `n` records sealed every `batch`, as the gateway writes it.
fn log(k: &Key, n: u64, batch: u64) -> Vec<String> {
    let mut lines = Vec::new();
    let mut prev = GENESIS.to_owned();
    let mut leaves = Vec::new();
    let mut last_seal = (0u64, GENESIS.to_owned());
    let push = |line: Line, lines: &mut Vec<String>, prev: &mut String| -> [u8; 32] {
        let text = serde_json::to_string(&line).unwrap();
        let hash = sha256(text.as_bytes());
        *prev = hex(&hash);
        lines.push(text);
        hash
    };
    for seq in 1..=n {
        let record = Record {
            seq,
            time: 1_795_000_000_000_000 + seq as i64,
            node: "node-1".into(),
            id: format!("msg-{seq}"),
            client: "KZ/GOV/000000000003/egov-portal".into(),
            service: "KZ/GOV/000000000001/population-register/person/v1".into(),
            status: 200,
            code: None,
            body_sha512: Some("AAAA".into()),
            signature: None,
            // Records 2 and 7 are two steps of one asynchronous message.
            event: [2, 7].contains(&seq).then(|| if seq == 2 { "send" } else { "ack" }.to_owned()),
            bus_id: [2, 7].contains(&seq).then(|| "bus-1".to_owned()),
            message: (seq == 7).then(|| "msg-2".to_owned()),
            attempt: None,
            prev: prev.clone(),
        };
        leaves.push(push(Line::Record(record), &mut lines, &mut prev));
        if seq % batch == 0 || seq == n {
            let first = seq + 1 - leaves.len() as u64;
            let links = SealLinks { prev: prev.clone(), batch: last_seal.0 + 1, prev_seal: last_seal.1.clone() };
            let s = seal(&k.key, &k.chain, first, seq, &leaves, 1_795_000_000_000_000, links).unwrap();
            let hash = push(Line::Seal(s), &mut lines, &mut prev);
            last_seal = (last_seal.0 + 1, hex(&hash));
            leaves.clear();
        }
    }
    lines
}

fn segments(lines: &[String], split: usize) -> Vec<(String, Vec<u8>)> {
    let join = |l: &[String]| l.iter().map(|x| format!("{x}\n")).collect::<String>().into_bytes();
    vec![("seg-1".into(), join(&lines[..split])), ("seg-2".into(), join(&lines[split..]))]
}

#[test]
fn a_whole_log_verifies_across_segments() {
    let k = key("A");
    let lines = log(&k, 10, 4);
    assert_eq!(lines.len(), 13, "10 records, 3 seals");
    let summary = verify(&segments(&lines, 6), Some(&k.chain[0])).unwrap();
    let head = Head { batch: 3, hash: hex(&sha256(lines[12].as_bytes())) };
    assert_eq!(summary, Summary { records: 10, seals: 3, head: Some(head), watched: None });
    assert_eq!(verify(&segments(&lines, 6), None).unwrap(), summary);
}

fn fault(segs: &[(String, Vec<u8>)], k: &Key) -> LogFault {
    verify(segs, Some(&k.chain[0])).expect_err("tampering must be detected")
}

#[test]
fn each_kind_of_tampering_is_detected_and_named() {
    let k = key("A");
    let lines = log(&k, 10, 4);
    // Record 3 (line 3) with one byte changed: its status.
    let mut flipped = lines.clone();
    flipped[2] = flipped[2].replace("\"status\":200", "\"status\":201");
    let f = fault(&segments(&flipped, 6), &k);
    assert_eq!((f.segment.as_str(), f.line, f.seq), ("seg-1", 3, Some(3)), "{f}");
    // Record 3 deleted.
    let mut deleted = lines.clone();
    deleted.remove(2);
    let f = fault(&segments(&deleted, 6), &k);
    assert_eq!((f.line, f.seq), (3, Some(4)), "{f}");
    assert!(f.reason.contains("deleted or reordered"));
    // Records 2 and 3 swapped.
    let mut swapped = lines.clone();
    swapped.swap(1, 2);
    let f = fault(&segments(&swapped, 6), &k);
    assert_eq!((f.line, f.seq), (2, Some(3)), "{f}");
    // Truncated in the middle of the last line, and whole lines cut off the end.
    let mut segs = segments(&lines, 6);
    let cut = segs[1].1.len() - 10;
    segs[1].1.truncate(cut);
    let f = fault(&segs, &k);
    assert!(f.reason.contains("truncated") && f.segment == "seg-2", "{f}");
    let f = fault(&segments(&lines[..lines.len() - 1], 6), &k);
    assert!(f.reason.contains("not sealed"), "{f}");
    assert_eq!(f.seq, Some(10));
    // A seal re-made by another key (the attacker re-signs a changed batch).
    let other = key("B");
    let mut forged = lines.clone();
    let Line::Seal(original) = serde_json::from_str(&forged[4]).unwrap() else { panic!() };
    let leaves: Vec<[u8; 32]> = forged[..4].iter().map(|l| sha256(l.as_bytes())).collect();
    let fake = seal(&other.key, &other.chain, 1, 4, &leaves, original.time, original.links()).unwrap();
    forged[4] = serde_json::to_string(&Line::Seal(fake)).unwrap();
    // Its hash changed too, so re-link the next line as an attacker would.
    let mut next: Line = serde_json::from_str(&forged[5]).unwrap();
    if let Line::Record(r) = &mut next {
        r.prev = hex(&sha256(forged[4].as_bytes()));
    }
    forged[5] = serde_json::to_string(&next).unwrap();
    let f = fault(&segments(&forged, 6), &k);
    assert!(f.reason.contains("another certificate") && f.line == 5, "{f}");
    // Without the gateway's certificate, every seal must be by the first seal's signer.
    let mut late = lines.clone();
    let Line::Seal(original) = serde_json::from_str(&late[9]).unwrap() else { panic!() };
    let leaves: Vec<[u8; 32]> = late[5..9].iter().map(|l| sha256(l.as_bytes())).collect();
    late[9] = serde_json::to_string(&Line::Seal(
        seal(&other.key, &other.chain, 5, 8, &leaves, original.time, original.links()).unwrap(),
    ))
    .unwrap();
    let mut after: Line = serde_json::from_str(&late[10]).unwrap();
    if let Line::Record(r) = &mut after {
        r.prev = hex(&sha256(late[9].as_bytes()));
    }
    late[10] = serde_json::to_string(&after).unwrap();
    let f = verify(&segments(&late, 6), None).expect_err("a second signer");
    assert!(f.reason.contains("another certificate") && f.line == 4 && f.segment == "seg-2", "{f}");
}

#[test]
fn a_published_head_shows_deleted_trailing_batches_and_a_rewritten_seal() {
    let k = key("A");
    let lines = log(&k, 12, 4);
    let full = segments(&lines, 6);
    let summary = verify(&full, Some(&k.chain[0])).unwrap();
    let head = summary.head.clone().unwrap();
    assert_eq!(head.batch, 3);
    let parsed: Head = head.to_string().parse().unwrap();
    assert_eq!(parsed, head);
    let check = |segs: &[(String, Vec<u8>)], expected: &Head| {
        let s = verify_watching(segs, Some(&k.chain[0]), Some(expected.batch)).unwrap();
        check_head(&s, expected)
    };
    assert_eq!(check(&full, &head), Ok(()));
    // The last batch (4 records and its seal) cut off: the chain alone still verifies.
    let cut = segments(&lines[..10], 6);
    let why = check(&cut, &head).unwrap_err();
    assert!(why.contains("ends at seal 2") && why.contains("batches 3..=3 are missing"), "{why}");
    // An older published head is still in a grown log.
    let older = Head { batch: 2, hash: hex(&sha256(lines[9].as_bytes())) };
    assert_eq!(check(&full, &older), Ok(()));
    let wrong = Head { batch: 2, hash: GENESIS.into() };
    assert!(check(&full, &wrong).unwrap_err().contains("was published"));
    assert!("3:zz".parse::<Head>().is_err() && "x".parse::<Head>().is_err());
}

#[test]
fn a_missing_or_unlinked_seal_is_named_by_its_number() {
    let k = key("A");
    let lines = log(&k, 12, 4);
    // Batch 2 (records 5..=8 and seal 2) removed, record 9 re-linked, seal 3 kept:
    // the record sequence breaks first; re-numbering records would break seal 3's link.
    let mut gap: Vec<String> = lines[..5].to_vec();
    gap.extend_from_slice(&lines[10..]);
    let f = fault(&segments(&gap, 3), &k);
    assert!(f.reason.contains("deleted or reordered"), "{f}");
    // A seal whose number skips one: re-made by the gateway's own key (a bug or an
    // insider), its number checked against the seal before.
    let mut skipped = lines.clone();
    let Line::Seal(original) = serde_json::from_str(&skipped[9]).unwrap() else { panic!() };
    let leaves: Vec<[u8; 32]> = skipped[5..9].iter().map(|l| sha256(l.as_bytes())).collect();
    let links = SealLinks { batch: 3, ..original.links() };
    skipped[9] = serde_json::to_string(&Line::Seal(seal(&k.key, &k.chain, 5, 8, &leaves, 0, links).unwrap())).unwrap();
    let mut after: Line = serde_json::from_str(&skipped[10]).unwrap();
    if let Line::Record(r) = &mut after {
        r.prev = hex(&sha256(skipped[9].as_bytes()));
    }
    skipped[10] = serde_json::to_string(&after).unwrap();
    let f = fault(&segments(&skipped, 6), &k);
    assert!(f.reason.contains("seal 3 where seal 2 was due"), "{f}");
}

#[test]
fn evidence_proves_one_record_and_nothing_else() {
    let k = key("A");
    let lines = log(&k, 11, 4);
    let segs = segments(&lines, 7);
    for id in ["msg-1", "msg-6", "msg-11"] {
        let e = evidence(segs.iter().map(|(_, b)| b), id).remove(0);
        let record = verify_evidence(&e, Some(&k.chain[0])).unwrap();
        assert_eq!(record.id, id);
        let mut changed = e.clone();
        changed.record = changed.record.replace("\"status\":200", "\"status\":500");
        assert!(verify_evidence(&changed, Some(&k.chain[0])).is_err());
        let other = key("B");
        assert!(verify_evidence(&e, Some(&other.chain[0])).unwrap_err().contains("another certificate"));
    }
    assert!(evidence(segs.iter().map(|(_, b)| b), "msg-99").is_empty());
}

#[test]
fn a_bundle_holds_every_step_of_an_asynchronous_message() {
    let k = key("A");
    let lines = log(&k, 11, 4);
    let segs = segments(&lines, 7);
    // By bus id: the send (batch 1) and the ack (batch 2); by the sender's id too.
    for id in ["bus-1", "msg-2"] {
        let items = evidence(segs.iter().map(|(_, b)| b), id);
        assert_eq!(items.len(), 2, "{id}");
        let bundle = Bundle { id: id.into(), evidence: items };
        let records = verify_bundle(&bundle, Some(&k.chain[0])).unwrap();
        let events: Vec<_> = records.iter().map(|r| r.event.as_deref().unwrap()).collect();
        assert_eq!(events, ["send", "ack"]);
    }
    // An item about another message does not pass as evidence of this one.
    let mut bundle = Bundle { id: "bus-1".into(), evidence: evidence(segs.iter().map(|(_, b)| b), "bus-1") };
    bundle.evidence.push(evidence(segs.iter().map(|(_, b)| b), "msg-5").remove(0));
    assert!(verify_bundle(&bundle, Some(&k.chain[0])).unwrap_err().contains("item 2: record 5 does not name bus-1"));
    let empty = Bundle { id: "bus-9".into(), evidence: Vec::new() };
    assert!(verify_bundle(&empty, None).unwrap_err().contains("no evidence"));
}

#[test]
fn merkle_proofs_hold_for_every_leaf_and_size() {
    for n in 1..=9usize {
        let leaves: Vec<[u8; 32]> = (0..n).map(|i| sha256(&[i as u8])).collect();
        let root = merkle_root(&leaves);
        for i in 0..n {
            assert_eq!(proof_root(&leaves[i], &merkle_proof(&leaves, i)), Some(root), "n={n} i={i}");
        }
    }
}

#[test]
fn the_written_part_of_a_segment_stops_before_its_claimed_zeros() {
    assert_eq!(written(b"{\"a\":1}\n\0\0\0\0"), b"{\"a\":1}\n");
    assert_eq!(written(b"{\"a\":1}\n"), b"{\"a\":1}\n");
    assert_eq!(written(b"\0\0\0"), b"");
    assert_eq!(written(b""), b"");
    // Zeros inside (a torn write) stay: only the tail is claimed space.
    assert_eq!(written(b"x\0\0y\n\0"), b"x\0\0y\n");
}

#[test]
fn an_entry_writes_the_line_serde_writes_for_its_record() {
    let full = Record {
        seq: 42,
        time: 1_700_000_000_123_456,
        node: "node-1".into(),
        id: "id \"quoted\" \\ \u{1}".into(),
        client: "KZ/GOV/1/a".into(),
        service: "KZ/GOV/2/b/s".into(),
        status: 200,
        code: Some("server.log_unavailable".into()),
        body_sha512: Some("c2hh".into()),
        signature: Some("c2ln".into()),
        event: Some("take".into()),
        bus_id: Some("0190-bus".into()),
        message: Some("m-1".into()),
        attempt: Some(3),
        prev: GENESIS.into(),
    };
    let bare = Record {
        code: None,
        body_sha512: None,
        signature: None,
        event: None,
        bus_id: None,
        message: None,
        attempt: None,
        ..full.clone()
    };
    for record in [full, bare] {
        let mut line = Vec::new();
        Entry::encode(&Fields::of(&record)).write_line(record.seq, &record.prev, &mut line);
        assert_eq!(
            String::from_utf8(line.clone()).unwrap(),
            serde_json::to_string(&Line::Record(record.clone())).unwrap()
        );
        assert_eq!(serde_json::from_slice::<Line>(&line).unwrap(), Line::Record(record));
    }
}

#[test]
fn an_entry_encodes_its_fields_as_serde_would_whatever_the_strings_hold() {
    let strings = [
        "",
        "plain",
        "q\"uote",
        "back\\slash",
        "ctl\u{0}\u{8}\u{9}\u{a}\u{c}\u{d}\u{1f}",
        "del\u{7f}",
        "ünï©ødé ✓",
        "/",
    ];
    for (i, s) in strings.iter().enumerate() {
        let other = strings[(i + 3) % strings.len()];
        let fields = Fields {
            time: -(i as i64) * 1_000_003,
            node: s,
            id: other,
            client: s,
            service: other,
            status: [0, 200, 503, u16::MAX][i % 4],
            code: (i % 2 == 0).then_some(*s),
            body_sha512: (i % 3 == 0).then_some(other),
            signature: (i % 2 == 1).then_some(*s),
            event: Some(other),
            bus_id: (i % 4 == 0).then_some(*s),
            message: (i % 3 != 0).then_some(*s),
            attempt: (i % 2 == 0).then_some(u32::MAX - i as u32),
        };
        assert_eq!(
            String::from_utf8(Entry::encode(&fields).0).unwrap(),
            serde_json::to_string(&fields).unwrap(),
            "{s:?}"
        );
    }
}
