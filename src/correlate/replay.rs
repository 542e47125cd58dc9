//! Exactly-once counting of re-read input: per-detection high-water marks per source.
//!
//! A followed log is read at least once: its offset is committed only after the detections its
//! lines made are durable (`service::pipeline`), so a process killed in between reads those
//! lines again after the restart. Each such line carries the same [`SourcePos`] as the first
//! time (the follower derives it from the file itself, `ingest::follow`). A detection keeps, per
//! source, the position of the last observation it counted ([`SourceMark`], stored inside the
//! detection, so it is durable in exactly the flush that made those counts durable); an
//! observation at or before its source's mark was counted already and bumps no counter and adds
//! no evidence again. Everything else the observation does (bindings, stage, names, times) is
//! idempotent and still happens, so a re-read line also rebuilds the engine's memory.
//!
//! The engine's cross-source de-duplication (a query seen by a sniffer and a resolver log is
//! one lookup) is unchanged: it decides among observations that are new to a detection; a
//! de-duplicated observation still advances its source's mark, so re-reading it after a
//! restart (when the other source's copy is no longer in memory) does not count it either.
//!
//! Bounded: at most [`MAX_SOURCE_MARKS`] marks per detection, least recently advanced dropped
//! first (counted in `poolwatch_correlate_source_marks_dropped_total`). A dropped source is one
//! the detection has not heard from for the longest time, typically a log rotated away long ago;
//! re-reading it would count again.

use std::sync::OnceLock;

use super::engine::EngineStats;
use crate::metrics::{self, Counter};
use crate::model::{SourceMark, SourcePos};

/// Sources whose marks one detection keeps. A detection fed by one resolver log sees a new
/// source per rotation (a new file): 16 cover two weeks of daily rotation of a log and its
/// sensor's, far longer than a crash loop's re-read window (seconds).
pub const MAX_SOURCE_MARKS: usize = 16;

/// What the marks say about one observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Seen {
    /// Not positioned, or past its source's mark (which now points at it): count it.
    New,
    /// At or before its source's mark: already in the counts.
    Replayed,
}

struct Metrics {
    replayed: Counter,
    dropped: Counter,
}

fn m() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| Metrics {
        replayed: metrics::counter(
            "poolwatch_correlate_replayed_total",
            "Observations read again (a followed log resumed before its offset commit) that a detection had counted already: not counted twice.",
            &[],
        ),
        dropped: metrics::counter(
            "poolwatch_correlate_source_marks_dropped_total",
            "Per-detection source marks dropped (least recently advanced) because a detection had MAX_SOURCE_MARKS sources.",
            &[],
        ),
    })
}

/// Checks `pos` against `marks` and advances its source's mark when it is new. The most
/// recently advanced mark is kept last. Returns whether a mark had to be dropped for room
/// alongside the verdict.
pub(super) fn observe(marks: &mut Vec<SourceMark>, pos: Option<SourcePos>) -> (Seen, bool) {
    let Some(pos) = pos else {
        return (Seen::New, false);
    };
    if let Some(i) = marks.iter().position(|mk| mk.source == pos.source) {
        let Some(mk) = marks.get(i).copied() else {
            return (Seen::New, false);
        };
        if pos.key() <= mk.key() {
            m().replayed.inc();
            return (Seen::Replayed, false);
        }
        marks.remove(i);
    }
    let mut dropped = false;
    while marks.len() >= MAX_SOURCE_MARKS {
        marks.remove(0);
        m().dropped.inc();
        dropped = true;
    }
    marks.push(SourceMark {
        source: pos.source,
        offset: pos.offset,
        seq: pos.seq,
    });
    (Seen::New, dropped)
}

/// [`observe`] for the engine: true when the observation at `pos` was counted already (it then
/// changes no counts or evidence); keeps the engine's counters.
pub(super) fn already_counted(
    marks: &mut Vec<SourceMark>,
    pos: Option<SourcePos>,
    stats: &mut EngineStats,
) -> bool {
    let (seen, dropped) = observe(marks, pos);
    if dropped {
        stats.source_marks_dropped = stats.source_marks_dropped.saturating_add(1);
    }
    if seen == Seen::Replayed {
        stats.replayed = stats.replayed.saturating_add(1);
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SourceId;

    fn at(source: u64, offset: u64, seq: u32) -> Option<SourcePos> {
        Some(SourcePos {
            source: SourceId(source),
            offset,
            seq,
        })
    }

    /// Named cases: (name, marks before as (source, offset, seq), observation, verdict, marks
    /// after).
    #[allow(clippy::type_complexity)]
    const CASES: &[(
        &str,
        &[(u64, u64, u32)],
        Option<(u64, u64, u32)>,
        Seen,
        &[(u64, u64, u32)],
    )] = &[
        (
            "unpositioned always counts",
            &[(1, 90, 0)],
            None,
            Seen::New,
            &[(1, 90, 0)],
        ),
        (
            "first of a source",
            &[],
            Some((1, 0, 0)),
            Seen::New,
            &[(1, 0, 0)],
        ),
        (
            "past the mark",
            &[(1, 10, 0)],
            Some((1, 20, 0)),
            Seen::New,
            &[(1, 20, 0)],
        ),
        (
            "at the mark is a replay",
            &[(1, 20, 0)],
            Some((1, 20, 0)),
            Seen::Replayed,
            &[(1, 20, 0)],
        ),
        (
            "before the mark is a replay",
            &[(1, 20, 0)],
            Some((1, 5, 3)),
            Seen::Replayed,
            &[(1, 20, 0)],
        ),
        (
            "second observation of the same line",
            &[(1, 20, 0)],
            Some((1, 20, 1)),
            Seen::New,
            &[(1, 20, 1)],
        ),
        (
            "earlier index of the same line",
            &[(1, 20, 1)],
            Some((1, 20, 0)),
            Seen::Replayed,
            &[(1, 20, 1)],
        ),
        (
            "another source's mark is independent",
            &[(1, 20, 0), (2, 99, 0)],
            Some((1, 5, 0)),
            Seen::Replayed,
            &[(1, 20, 0), (2, 99, 0)],
        ),
        (
            "an advanced mark moves last",
            &[(1, 20, 0), (2, 99, 0)],
            Some((1, 30, 0)),
            Seen::New,
            &[(2, 99, 0), (1, 30, 0)],
        ),
        (
            "a new source beside others",
            &[(1, 20, 0)],
            Some((2, 0, 0)),
            Seen::New,
            &[(1, 20, 0), (2, 0, 0)],
        ),
    ];

    #[test]
    fn mark_table() {
        for (name, before, obs, verdict, after) in CASES {
            let mut marks: Vec<SourceMark> = before
                .iter()
                .map(|&(s, o, q)| SourceMark {
                    source: SourceId(s),
                    offset: o,
                    seq: q,
                })
                .collect();
            let pos = obs.and_then(|(s, o, q)| at(s, o, q));
            let (seen, dropped) = observe(&mut marks, pos);
            assert_eq!(seen, *verdict, "{name}");
            assert!(!dropped, "{name}");
            let got: Vec<(u64, u64, u32)> = marks
                .iter()
                .map(|m| (m.source.0, m.offset, m.seq))
                .collect();
            assert_eq!(got, after.to_vec(), "{name}");
        }
    }

    #[test]
    fn a_re_read_stream_counts_once() {
        // One source read to line 5, "crash", read again from line 0 and on to line 8.
        let mut marks = Vec::new();
        let mut counted = 0;
        for line in (0..5).chain(0..8) {
            if observe(&mut marks, at(7, line * 100, 0)).0 == Seen::New {
                counted += 1;
            }
        }
        assert_eq!(counted, 8);
    }

    #[test]
    fn marks_are_capped_least_recently_advanced_first() {
        let mut marks = Vec::new();
        for s in 0..MAX_SOURCE_MARKS as u64 {
            assert_eq!(observe(&mut marks, at(s, 10, 0)), (Seen::New, false));
        }
        // Source 0 advances: now source 1 is the least recently advanced.
        assert_eq!(observe(&mut marks, at(0, 20, 0)), (Seen::New, false));
        assert_eq!(observe(&mut marks, at(1000, 0, 0)), (Seen::New, true));
        assert_eq!(marks.len(), MAX_SOURCE_MARKS);
        assert!(!marks.iter().any(|m| m.source == SourceId(1)));
        assert!(marks.iter().any(|m| m.source == SourceId(0)));
        // The dropped source's mark is gone: its old lines count again (the documented limit).
        assert_eq!(observe(&mut marks, at(1, 10, 0)).0, Seen::New);
    }
}
