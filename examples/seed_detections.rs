//! Fills a poolwatch database with N realistic detections for the API load benchmark
//! (`benches/api_load.sh`): the bundled sample is run through the real pipeline once, and its
//! detections (with their evidence) are written N times over with fresh ids, clients and times
//! through `Store::upsert_detection`.
//!
//! Usage: cargo run --release --example seed_detections -- DB_DIR [N]

// A test/bench/example fails loudly: unwrap/expect/indexing are allowed here (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use poolwatch::capture::CaptureConfig;
use poolwatch::correlate::{Engine, EngineConfig, Pipeline};
use poolwatch::ingest::IngestConfig;
use poolwatch::input::{self, InputFormat};
use poolwatch::matcher::{self, Blocklists};
use poolwatch::model::Timestamp;
use poolwatch::store::Store;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let db = args.next().ok_or("usage: seed_detections DB_DIR [N]")?;
    let n: u32 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);

    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sample");
    let tmp = Store::open_temporary()?;
    let engine = Engine::new(
        EngineConfig::default(),
        matcher::shared(Blocklists::load(&[])?),
    );
    let mut p = Pipeline::new(engine, Some(tmp.clone()))?;
    for f in ["sample.pcap", "sample-dnsmasq.log"] {
        let obs = input::open(
            &sample.join(f),
            InputFormat::Auto,
            &CaptureConfig::default(),
            &IngestConfig::default(),
        )?;
        for o in obs {
            p.push(o)?;
        }
    }
    p.finish()?;
    let templates = tmp.all_detections()?;
    if templates.is_empty() {
        return Err("the sample gave no detections".into());
    }

    let store = Store::open(std::path::Path::new(&db))?;
    let base = Timestamp::now().plus_secs(-86_400);
    for i in 0..n {
        let t = templates
            .get(i as usize % templates.len())
            .ok_or("no template")?;
        let mut d = t.clone();
        d.id = format!("{:024x}", 0xbe00_0000_u64 + u64::from(i));
        d.client_ip = std::net::IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        let shift = base.plus_secs(i64::from(i) * 8);
        let span = d.last_seen.as_micros() - d.first_seen.as_micros();
        d.first_seen = shift;
        d.last_seen = Timestamp::from_micros(shift.as_micros() + span);
        store.upsert_detection(&d)?;
    }
    store.flush()?;
    println!("{n} detections written to {db}");
    Ok(())
}
