//! Timestamp resolution for log lines: zone-less and year-less timestamps are completed with
//! [`Zone`] and a reference time (see `docs/ingest.md`, "Timestamps").
//!
//! Rules:
//! * A timestamp without a zone is read in the configured [`Zone`] (default UTC).
//! * A timestamp without a year (syslog `Nov 26 20:27:53`) gets the year that puts it at or before
//!   the reference time plus [`FUTURE_SLACK_SECS`]; the reference is `IngestConfig::reference`,
//!   else the file's modification time, else the wall clock.
//! * Within one file, a year-less timestamp that would jump back by more than
//!   [`ROLLOVER_BACKSTEP_SECS`] against the previous line is taken to have crossed New Year and
//!   gets the next year (so `Dec 31` → `Jan 1` keeps going forward).

use chrono::{Datelike, Local, NaiveDate, NaiveDateTime, TimeZone};

use crate::model::Timestamp;

/// How far into the future (relative to the reference) a year-less timestamp may land before the
/// previous year is chosen instead: covers clock skew and zone mistakes of up to a day.
pub const FUTURE_SLACK_SECS: i64 = 86_400;
/// A year-less timestamp more than this far behind the previous line of the same file is taken
/// to have rolled over into the next year (logs are written in time order; half a year of
/// backwards jump can only be New Year).
pub const ROLLOVER_BACKSTEP_SECS: i64 = 182 * 86_400;

/// The zone in which zone-less log timestamps are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Zone {
    #[default]
    Utc,
    /// A fixed offset east of UTC, in seconds (`+02:00` → 7200).
    Fixed(i32),
    /// The machine's local zone (with its DST rules).
    Local,
}

impl Zone {
    /// Parses `UTC`/`Z`, `local`, or an offset `+02:00`, `-0500`, `+2`.
    pub fn parse(s: &str) -> Option<Zone> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("utc") || s.eq_ignore_ascii_case("z") || s == "+00:00" {
            return Some(Zone::Utc);
        }
        if s.eq_ignore_ascii_case("local") {
            return Some(Zone::Local);
        }
        let (sign, rest) = match s.as_bytes().first()? {
            b'+' => (1, s.get(1..)?),
            b'-' => (-1, s.get(1..)?),
            _ => return None,
        };
        let (h, m) = if let Some((h, m)) = rest.split_once(':') {
            (h, m)
        } else if rest.len() == 4 {
            (rest.get(..2)?, rest.get(2..)?)
        } else {
            (rest, "0")
        };
        let h: i32 = h.parse().ok()?;
        let m: i32 = m.parse().ok()?;
        if !(0..=18).contains(&h) || !(0..60).contains(&m) {
            return None;
        }
        Some(Zone::Fixed(sign * (h * 3600 + m * 60)))
    }

    /// Seconds since the epoch of a civil date-time read in this zone.
    pub fn to_epoch(self, ndt: NaiveDateTime) -> Option<i64> {
        match self {
            Zone::Utc => Some(ndt.and_utc().timestamp()),
            Zone::Fixed(off) => Some(ndt.and_utc().timestamp() - i64::from(off)),
            Zone::Local => Local
                .from_local_datetime(&ndt)
                .earliest()
                .map(|dt| dt.timestamp()),
        }
    }
}

/// Month number (1–12) of an English three-letter abbreviation, any case.
pub fn month_from_abbrev(b: &[u8]) -> Option<u32> {
    let m = match b.get(..3)? {
        [a, b, c] => [
            a.to_ascii_lowercase(),
            b.to_ascii_lowercase(),
            c.to_ascii_lowercase(),
        ],
        _ => return None,
    };
    Some(match &m {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    })
}

/// Resolves civil timestamps of one file into [`Timestamp`]s, caching the day start (the hot path
/// is one comparison and a few multiplications per line).
#[derive(Debug)]
pub struct TimeResolver {
    zone: Zone,
    reference: Option<Timestamp>,
    /// (year, month, day) → epoch seconds of local midnight (not for `Zone::Local`).
    day_cache: Option<((i32, u32, u32), i64)>,
    /// (month, day) → resolved year, for year-less timestamps.
    year_cache: Option<((u32, u32), i32)>,
    last: Option<i64>,
}

impl TimeResolver {
    pub fn new(zone: Zone, reference: Option<Timestamp>) -> Self {
        TimeResolver {
            zone,
            reference,
            day_cache: None,
            year_cache: None,
            last: None,
        }
    }

    /// The reference time (for lines that carry no timestamp at all), else the wall clock.
    pub fn reference_or_now(&self) -> Timestamp {
        self.reference.unwrap_or_else(Timestamp::now)
    }

    /// A complete civil date-time (with year) in the configured zone; `micros` is the fraction.
    pub fn resolve(
        &mut self,
        year: i32,
        month: u32,
        day: u32,
        secs_of_day: u32,
        micros: u32,
    ) -> Option<Timestamp> {
        if secs_of_day > 86_400 || micros >= 1_000_000 {
            return None;
        }
        let secs = match self.zone {
            Zone::Local => {
                let d = NaiveDate::from_ymd_opt(year, month, day)?;
                let ndt = d.and_hms_opt(
                    secs_of_day / 3600,
                    (secs_of_day / 60) % 60,
                    secs_of_day % 60,
                )?;
                self.zone.to_epoch(ndt)?
            }
            _ => {
                let base = match self.day_cache {
                    Some((k, v)) if k == (year, month, day) => v,
                    _ => {
                        let d = NaiveDate::from_ymd_opt(year, month, day)?;
                        let v = self.zone.to_epoch(d.and_hms_opt(0, 0, 0)?)?;
                        self.day_cache = Some(((year, month, day), v));
                        v
                    }
                };
                base + i64::from(secs_of_day)
            }
        };
        self.last = Some(secs);
        Some(Timestamp(
            secs.checked_mul(1_000_000)?
                .checked_add(i64::from(micros))?,
        ))
    }

    /// A year-less civil date-time: infers the year (see the module rules).
    pub fn resolve_yearless(
        &mut self,
        month: u32,
        day: u32,
        secs_of_day: u32,
        micros: u32,
    ) -> Option<Timestamp> {
        let year = match self.year_cache {
            Some((k, y)) if k == (month, day) => y,
            _ => {
                let y = self.infer_year(month, day, secs_of_day)?;
                self.year_cache = Some(((month, day), y));
                y
            }
        };
        self.resolve(year, month, day, secs_of_day, micros)
    }

    fn infer_year(&self, month: u32, day: u32, secs_of_day: u32) -> Option<i32> {
        let reference = self.reference.unwrap_or_else(Timestamp::now);
        let ref_year = reference.to_datetime().map(|d| d.year()).unwrap_or(1970);
        let epoch_in = |y: i32| -> Option<i64> {
            // Feb 29 exists only in leap years: fall back to the nearest leap year below.
            let d = NaiveDate::from_ymd_opt(y, month, day)?;
            let ndt = d.and_hms_opt(
                secs_of_day / 3600,
                (secs_of_day / 60) % 60,
                secs_of_day % 60,
            )?;
            self.zone.to_epoch(ndt)
        };
        let mut year = ref_year;
        let mut candidate = None;
        for y in [
            ref_year,
            ref_year - 1,
            ref_year - 2,
            ref_year - 3,
            ref_year - 4,
        ] {
            if let Some(t) = epoch_in(y) {
                year = y;
                candidate = Some(t);
                if t <= reference.as_secs() + FUTURE_SLACK_SECS {
                    break;
                }
            }
        }
        let t = candidate?;
        // New Year inside the file: the previous line was late in the year, this one is early.
        if let Some(last) = self.last {
            if last - t > ROLLOVER_BACKSTEP_SECS {
                if let Some(t2) = epoch_in(year + 1) {
                    if (t2 - last).abs() < ROLLOVER_BACKSTEP_SECS {
                        return Some(year + 1);
                    }
                }
            }
        }
        Some(year)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn zone_parse() {
        assert_eq!(Zone::parse("UTC"), Some(Zone::Utc));
        assert_eq!(Zone::parse("+02:00"), Some(Zone::Fixed(7200)));
        assert_eq!(Zone::parse("-0530"), Some(Zone::Fixed(-(5 * 3600 + 1800))));
        assert_eq!(Zone::parse("local"), Some(Zone::Local));
        assert_eq!(Zone::parse("+99:00"), None);
        assert_eq!(Zone::parse("bogus"), None);
    }

    #[test]
    fn year_not_in_future() {
        let mut r = TimeResolver::new(Zone::Utc, Some(ts("2026-11-26T21:00:00Z")));
        let t = r.resolve_yearless(11, 26, 20 * 3600, 0).unwrap();
        assert_eq!(t, ts("2026-11-26T20:00:00Z"));
        let mut r = TimeResolver::new(Zone::Utc, Some(ts("2026-01-02T00:00:00Z")));
        let t = r.resolve_yearless(12, 30, 0, 0).unwrap();
        assert_eq!(t, ts("2025-12-30T00:00:00Z"));
    }

    #[test]
    fn rollover_within_file() {
        let mut r = TimeResolver::new(Zone::Utc, Some(ts("2025-12-31T23:59:59Z")));
        assert_eq!(
            r.resolve_yearless(12, 31, 86_399, 0).unwrap(),
            ts("2025-12-31T23:59:59Z")
        );
        assert_eq!(
            r.resolve_yearless(1, 1, 1, 0).unwrap(),
            ts("2026-01-01T00:00:01Z")
        );
    }

    #[test]
    fn fixed_zone_offsets() {
        let mut r = TimeResolver::new(Zone::Fixed(7200), None);
        assert_eq!(
            r.resolve(2026, 11, 26, 12 * 3600, 5).unwrap(),
            Timestamp(ts("2026-11-26T10:00:00Z").0 + 5)
        );
    }

    #[test]
    fn leap_day_without_year() {
        let mut r = TimeResolver::new(Zone::Utc, Some(ts("2026-03-01T00:00:00Z")));
        assert_eq!(
            r.resolve_yearless(2, 29, 0, 0).unwrap(),
            ts("2024-02-29T00:00:00Z")
        );
        assert!(r.resolve_yearless(2, 30, 0, 0).is_none());
        assert!(month_from_abbrev(b"Xyz").is_none());
        assert_eq!(month_from_abbrev(b"nov"), Some(11));
    }
}
