//! Tests of the zero-copy wire reader (`wire.rs`).

use super::*;

struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// The rendering before issue #16's fourth pass: the labels, each through `push_label`.
fn by_labels(n: &WireName<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    for label in n.labels() {
        if !out.is_empty() {
            out.push(b'.');
        }
        super::super::push_label(&mut out, label);
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// `write_normalised` (runs copied at once) is the label-by-label rendering for a name at
/// every offset of arbitrary bytes — root, labels running past the end, reserved length
/// codes, pointers (loops, chains past `MAX_POINTERS`, a pointer cut in half), bytes that
/// need `\.`, `\\` or `\DDD` — after text already in the buffer. Fails when a run's later
/// length bytes are not turned into dots, when an escaped run is not re-rendered, or when
/// the pointer bound differs. `renders_as` says yes to that rendering and no to texts one
/// byte away from it.
#[test]
fn runs_render_as_labels() {
    const BYTES: &[u8] = &[
        0, 1, 2, 3, 5, 0x3f, 0x40, 0x80, 0xc0, 0xc1, b'a', b'Z', b'.', b'\\', b'-', 0x7f, 0x20,
        0xff,
    ];
    let mut r = Lcg(3);
    let mut checked = 0usize;
    for round in 0..30_000 {
        let len = r.below(48);
        let mut msg: Vec<u8> = (0..len).map(|_| BYTES[r.below(BYTES.len())]).collect();
        if round % 3 == 0 {
            // Plausible names: labels of plain letters and pointers to earlier offsets.
            msg.clear();
            while msg.len() < len {
                match r.below(5) {
                    0 if !msg.is_empty() => {
                        let to = r.below(msg.len());
                        msg.extend_from_slice(&[0xc0, to as u8]);
                    }
                    1 => msg.push(0),
                    _ => {
                        let l = 1 + r.below(6);
                        msg.push(l as u8);
                        msg.extend((0..l).map(|_| b"abcXYZ-09"[r.below(9)]));
                    }
                }
            }
        }
        if round % 3 == 1 {
            // Labels of any byte value, so every byte meets the word test in every position.
            msg.clear();
            while msg.len() < len {
                let l = 1 + r.below(20);
                msg.push(l as u8);
                msg.extend((0..l).map(|_| r.below(256) as u8));
            }
            msg.push(0);
        }
        if round % 50 == 0 {
            // A pointer loop: more than MAX_POINTERS hops.
            msg = vec![1, b'a', 0xc0, 0];
        }
        for start in 0..=msg.len() {
            let n = WireName { msg: &msg, start };
            let mut got = b"prefix".to_vec();
            n.write_normalised(&mut got);
            let mut want = b"prefix".to_vec();
            let text = by_labels(&n);
            want.extend(&text);
            assert_eq!(got, want, "{msg:?} at {start}");
            // `renders_as` is "renders as exactly this": the rendering, and no other text
            // (one byte changed, dropped or added, a dot or a case flipped).
            assert!(n.renders_as(&text), "{msg:?} at {start}");
            let mut others = vec![text[..text.len() - 1].to_vec(), [&text[..], b"a"].concat()];
            let at = r.below(text.len());
            for b in [
                b'.',
                b'a',
                b'A',
                b'\\',
                text[at] ^ 0x20,
                text[at].wrapping_add(1),
            ] {
                let mut t = text.clone();
                t[at] = b;
                others.push(t);
            }
            for t in others {
                assert_eq!(n.renders_as(&t), t == text, "{msg:?} at {start} as {t:?}");
            }
            checked += 1;
        }
    }
    assert!(checked > 100_000);
}
