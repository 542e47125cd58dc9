//! dnstap throughput: Frame Streams framing + protobuf decoding + DNS decoding + pairing, against
//! the baseline of decoding the same DNS wire messages with `dns::parse_message` alone (the part
//! no dnstap reader can avoid). Input: Unbound's `dnstap.fstrm` from the lab set if present
//! (real resolver output), else the project's fixture; repeated to ~10k frames.
//!
//! `cargo bench --bench dnstap`

// A test/bench/example fails loudly: unwrap/expect/indexing are allowed here (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use poolwatch::ingest::dnstap::{decode_dnstap, encode_fstrm_file, Frame, FrameDecoder, Pairer};
use poolwatch::model::Source;
use std::path::PathBuf;

fn data_frames(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut dec = FrameDecoder::new();
    dec.feed(stream);
    let mut v = Vec::new();
    while let Ok(Some(f)) = dec.next_frame() {
        if let Frame::Data(d) = f {
            v.push(d.to_vec());
        }
    }
    v
}

fn input() -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let lab = root.join("../shared/data/lab/logs/unbound/solo-unbound/dnstap.fstrm");
    let bytes = std::fs::read(lab)
        .or_else(|_| std::fs::read(root.join("tests/data/dnstap/sample.fstrm")))
        .unwrap_or_default();
    let one = data_frames(&bytes);
    let mut frames = one.clone();
    while frames.len() < 10_000 && !one.is_empty() {
        frames.extend(one.iter().cloned());
    }
    encode_fstrm_file(&frames)
}

fn bench(c: &mut Criterion) {
    let stream = input();
    let frames = data_frames(&stream);
    let wires: Vec<Vec<u8>> = frames
        .iter()
        .filter_map(|f| {
            let m = decode_dnstap(f).ok()?;
            m.response_message.or(m.query_message).map(<[u8]>::to_vec)
        })
        .collect();
    let mut g = c.benchmark_group("dnstap");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.sample_size(20);
    g.measurement_time(std::time::Duration::from_secs(4));
    g.bench_function("baseline_parse_message_only", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for w in &wires {
                if let Ok(p) = poolwatch::dns::parse_message(w) {
                    n += p.answers.len();
                }
            }
            n
        })
    });
    g.bench_function("fstrm_protobuf_dns_pairing", |b| {
        b.iter(|| {
            let mut dec = FrameDecoder::new();
            let mut pairer = Pairer::new(Source::new("dnstap:bench"));
            let mut out = Vec::with_capacity(frames.len());
            for chunk in stream.chunks(64 * 1024) {
                dec.feed(chunk);
                while let Ok(Some(f)) = dec.next_frame() {
                    if let Frame::Data(d) = f {
                        pairer.push_frame(d, &mut out);
                    }
                }
            }
            pairer.finish(&mut out);
            out.len()
        })
    });
    g.bench_function("fstrm_protobuf_only", |b| {
        b.iter(|| {
            let mut dec = FrameDecoder::new();
            dec.feed(&stream);
            let mut n = 0usize;
            while let Ok(Some(f)) = dec.next_frame() {
                if let Frame::Data(d) = f {
                    n += decode_dnstap(d).map_or(0, |m| m.query_message.map_or(0, <[u8]>::len));
                }
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
