//! Knot Resolver (kresd) daemon log.
//!
//! kresd has no text query log: its stdout/journal carries daemon messages (`[system] …`,
//! `[taupd ] …`) and, with `log_level('debug')`, resolution traces (`[plan  ] plan 'name.' type
//! 'A' uid [12345.00]`) that name no client. None of these can become a `DnsObservation` (which
//! needs the asking client), so every line is counted and skipped; a one-time warning points to
//! dnstap, which is how Knot Resolver users log queries (`--format dnstap`).

use super::{Ctx, LineParser};
use crate::model::Observation;

#[derive(Default)]
pub struct Knot {
    warned: bool,
}

impl LineParser for Knot {
    fn line(&mut self, _line: &[u8], ctx: &mut Ctx, _out: &mut Vec<Observation>) {
        if !self.warned {
            self.warned = true;
            tracing::warn!(
                source = %ctx.source,
                "Knot Resolver's text log has no per-query records with a client; \
                 configure its dnstap module and read that instead (--format dnstap)"
            );
        }
        ctx.stats.ignored();
    }
}
