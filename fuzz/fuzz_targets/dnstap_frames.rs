//! Arbitrary bytes as a Frame Streams stream (split at an input-chosen point, as socket reads
//! would), every data frame through the dnstap protobuf decoder and the query/response pairer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poolwatch::ingest::dnstap::{decode_dnstap, Frame, FrameDecoder, Pairer};
use poolwatch::model::Source;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| *b as usize).min(data.len());
    let (a, b) = data.split_at(split);
    let mut dec = FrameDecoder::new();
    let mut pairer = Pairer::new(Source::new("dnstap:fuzz"));
    let mut out = Vec::new();
    for part in [a, b] {
        dec.feed(part);
        loop {
            match dec.next_frame() {
                Ok(Some(Frame::Data(d))) => pairer.push_frame(d, &mut out),
                Ok(Some(Frame::Control { .. })) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
    pairer.finish(&mut out);
    let _ = decode_dnstap(data);
});
