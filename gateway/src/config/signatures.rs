//! `[signatures]`: whom message signers must chain to, how fresh a signature must be,
//! how long it is remembered against replay, and the gateway's own signing key.

use super::checker::Checker;
use super::defaults;
use super::files::PemKind;
use super::raw::RawSignatures;
use super::systems::key_pair;
use super::Signatures;

pub(super) fn check(c: &mut Checker, raw: &RawSignatures) -> Signatures {
    let trust_anchors = c.pem_file(&raw.trust_anchors, "signatures.trust_anchors", PemKind::Certificates);
    let crls = raw
        .crls
        .iter()
        .enumerate()
        .map(|(i, crl)| c.pem_file(crl, format!("signatures.crls[{i}]"), PemKind::Crl))
        .collect();
    let max_clock_skew = c.duration(raw.max_clock_skew.as_ref(), defaults::MAX_CLOCK_SKEW, "signatures.max_clock_skew");
    let replay_window = c.duration(raw.replay_window.as_ref(), defaults::REPLAY_WINDOW, "signatures.replay_window");
    if replay_window < max_clock_skew * 2 {
        let span = raw.replay_window.as_ref().map_or(0..0, |w| w.span());
        c.error(span, "signatures.replay_window", "must cover at least twice max_clock_skew");
    }
    let replay_capacity = match &raw.replay_capacity {
        None => defaults::REPLAY_CAPACITY,
        Some(v) => c.positive(Some(v), *v.get_ref(), "signatures.replay_capacity") as usize,
    };
    let max_body_bytes = raw.max_body_bytes.as_ref().map_or(defaults::SIGNED_BODY_BYTES, |m| *m.get_ref());
    let gateway_key = key_pair(c, raw.cert.as_ref(), raw.key.as_ref(), "signatures", "cert", "key");
    Signatures { trust_anchors, crls, max_clock_skew, replay_window, replay_capacity, max_body_bytes, gateway_key }
}
