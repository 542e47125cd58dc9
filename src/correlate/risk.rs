//! The risk-score scale (0–100), anchored to the reference NDR. Documented in
//! `docs/detections.md`; change both together.

use crate::model::{DetectionCounts, Stage};

/// The reference NDR scores "New Cryptocurrency Mining Activity" (a pool lookup) 60.
pub const RISK_LOOKUP: u8 = 60;
/// A blocked lookup: the block worked, but the host still tried. Below a lookup that resolved.
pub const RISK_BLOCKED_LOOKUP: u8 = 45;
/// The reference NDR scores "Mining Pool Connection Attempt" 84.
pub const RISK_CONNECTION_ATTEMPT: u8 = 84;
/// A completed handshake with an address from the client's own pool answer.
pub const RISK_CONNECTION: u8 = 88;
/// A session with a pool address the client never resolved (evasion: hard-coded IP, DoH).
pub const RISK_DIRECT_IP: u8 = 90;
/// Mining protocol on the wire: the strongest single fact.
pub const RISK_STRATUM: u8 = 95;

/// Bonus when a miner agent string was seen (names the software).
pub const BONUS_AGENT: u8 = 2;
/// Bonus for a sustained session: ≥ [`SUSTAINED_BYTES`] exchanged or a flow lasting
/// ≥ [`SUSTAINED_DURATION_US`].
pub const BONUS_SUSTAINED: u8 = 3;
/// 1 MiB: well beyond a login exchange; jobs and shares keep flowing.
pub const SUSTAINED_BYTES: u64 = 1 << 20;
/// 10 minutes: miners hold one connection for hours; probes and analysts do not.
pub const SUSTAINED_DURATION_US: i64 = 10 * 60 * 1_000_000;
/// Bonus when lookups repeat ≥ [`REPEAT_LOOKUPS`] times (a configured miner retrying).
pub const BONUS_REPEATED: u8 = 1;
pub const REPEAT_LOOKUPS: u64 = 10;

/// Base score of a stage.
pub fn base(stage: Stage) -> u8 {
    match stage {
        Stage::Lookup => RISK_LOOKUP,
        Stage::BlockedLookup => RISK_BLOCKED_LOOKUP,
        Stage::ConnectionAttempt => RISK_CONNECTION_ATTEMPT,
        Stage::Connection => RISK_CONNECTION,
        Stage::DirectIp => RISK_DIRECT_IP,
        Stage::Stratum => RISK_STRATUM,
    }
}

/// The score: the highest base among the stages the incident reached, plus bonuses, capped at 100.
/// Bonuses only apply once traffic reached a pool (a lookup alone stays at its anchor, except for
/// the repeat bonus).
pub fn score(max_base: u8, counts: &DetectionCounts, agent_seen: bool, sustained: bool) -> u8 {
    let mut s = u16::from(max_base);
    if max_base >= RISK_CONNECTION_ATTEMPT {
        if agent_seen {
            s += u16::from(BONUS_AGENT);
        }
        if sustained || counts.bytes_out.saturating_add(counts.bytes_in) >= SUSTAINED_BYTES {
            s += u16::from(BONUS_SUSTAINED);
        }
    }
    if counts.lookups.saturating_add(counts.blocked_lookups) >= REPEAT_LOOKUPS {
        s += u16::from(BONUS_REPEATED);
    }
    s.min(100) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_and_cap() {
        let c = DetectionCounts::default();
        assert_eq!(score(base(Stage::Lookup), &c, false, false), 60);
        assert_eq!(score(base(Stage::ConnectionAttempt), &c, false, false), 84);
        assert!(base(Stage::BlockedLookup) < base(Stage::Lookup));
        let big = DetectionCounts {
            lookups: 100,
            bytes_out: u64::MAX,
            bytes_in: u64::MAX,
            ..Default::default()
        };
        assert_eq!(score(base(Stage::Stratum), &big, true, true), 100);
        for w in Stage::ALL.windows(2) {
            if let [a, b] = w {
                if *a != Stage::Lookup {
                    assert!(base(*a) < base(*b), "{a} < {b}");
                }
            }
        }
    }
}
