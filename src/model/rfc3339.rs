//! RFC 3339 text of a [`Timestamp`] without chrono's formatter: every detection's JSON has
//! about ten timestamps (issue #11: a 65 536-detection flood result prints ≈ 650 k; chrono's
//! `to_rfc3339_opts` parses a format description and allocates a `String` for each).
//!
//! The text is chrono's `to_rfc3339_opts(SecondsFormat::Micros, true)` byte for byte for years
//! 0000–9999 (`YYYY-MM-DDTHH:MM:SS.ffffffZ`); outside that range the caller falls back to chrono
//! (which writes a signed, wider year). `tests::same_text_as_chrono` compares the two.

use super::Timestamp;

/// Length of `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub(super) const RFC3339_LEN: usize = 27;

/// Writes `t` into `buf` and returns the text, or `None` when its year is not 0000–9999.
pub(super) fn write(t: Timestamp, buf: &mut [u8; RFC3339_LEN]) -> Option<&str> {
    write_bytes(t, buf).then(|| std::str::from_utf8(buf).ok())?
}

/// [`write`] without the UTF-8 check (the text is ASCII): false when the year is not 0000–9999.
pub(super) fn write_bytes(t: Timestamp, buf: &mut [u8; RFC3339_LEN]) -> bool {
    let secs = t.0.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    // The date of the last call on this thread: a detection's ten or so timestamps, and a
    // result's thousands, are mostly of one day (issue #11: the calendar arithmetic was about
    // half of each call).
    let date = match LAST_DATE.get() {
        (last, date) if last == days => date,
        _ => {
            let Some(date) = date_text(days) else {
                return false;
            };
            LAST_DATE.set((days, date));
            date
        }
    };
    if let Some(d) = buf.get_mut(..DATE_LEN) {
        d.copy_from_slice(&date);
    }
    // In range (< 86 400, < 10^6).
    let sod = field(secs.rem_euclid(86_400));
    let micros = field(t.0.rem_euclid(1_000_000));
    put2(buf, 11, sod / 3600);
    buf[13] = b':';
    put2(buf, 14, sod / 60 % 60);
    buf[16] = b':';
    put2(buf, 17, sod % 60);
    buf[19] = b'.';
    put2(buf, 20, micros / 10_000);
    put2(buf, 22, micros / 100 % 100);
    put2(buf, 24, micros % 100);
    buf[26] = b'Z';
    true
}

/// Length of `YYYY-MM-DDT`.
const DATE_LEN: usize = 11;

thread_local! {
    /// The days since the epoch and the `YYYY-MM-DDT` text [`write_bytes`] wrote last (day
    /// `i64::MIN` is never asked for: −9.2e18 µs is day ≈ −1.07e8).
    static LAST_DATE: std::cell::Cell<(i64, [u8; DATE_LEN])> =
        const { std::cell::Cell::new((i64::MIN, [0; DATE_LEN])) };
}

/// `YYYY-MM-DDT` of `days` since 1970-01-01, or `None` when its year is not 0000–9999. Out of
/// line: once per day of a run, not per timestamp.
#[cold]
#[inline(never)]
fn date_text(days: i64) -> Option<[u8; DATE_LEN]> {
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return None;
    }
    // In range (0–9999, 1–12, 1–31).
    let (y, m, d) = (field(y), field(m), field(d));
    let mut t = [0u8; DATE_LEN];
    put2(&mut t, 0, y / 100);
    put2(&mut t, 2, y % 100);
    t[4] = b'-';
    put2(&mut t, 5, m);
    t[7] = b'-';
    put2(&mut t, 8, d);
    t[10] = b'T';
    Some(t)
}

/// A calendar or clock field the caller's arithmetic keeps in `0..2^32`, as `u32` (whose
/// divisions by constants are cheaper than `i64`'s euclidean ones).
fn field(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// "00" to "99": two digits per lookup (a flood's result prints ≈ 650 k timestamps, issue #11).
const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// The two decimal digits of `v % 100` (every caller's value is below 100) at
/// `buf[at..at + 2]`.
fn put2(buf: &mut [u8], at: usize, v: u32) {
    // `v % 100` < 100: the cast is lossless and `i + 2` ≤ 200.
    let i = (v % 100) as usize * 2;
    if let (Some(d), Some(pair)) = (buf.get_mut(at..at + 2), PAIRS.get(i..i + 2)) {
        d.copy_from_slice(pair);
    }
}

/// (year, month, day) of the proleptic Gregorian calendar for days since 1970-01-01
/// (H. Hinnant's `civil_from_days`). `days` of an `i64` of microseconds is within ±1.1e8, far
/// from overflowing the arithmetic.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{SecondsFormat, TimeZone, Utc};

    fn chrono_text(us: i64) -> Option<String> {
        Utc.timestamp_micros(us)
            .single()
            .map(|dt| dt.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    const YEAR0: i64 = -62_167_219_200_000_000; // 0000-01-01T00:00:00Z
    const YEAR10000: i64 = 253_402_300_800_000_000; // 10000-01-01T00:00:00Z
    const DAY: i64 = 86_400_000_000;

    /// `us` written as chrono writes it, or not written (`None`) when chrono's year is outside
    /// 0000–9999 (the caller's fallback).
    fn same_as_chrono(us: i64) {
        let c = chrono_text(us);
        match (&c, ours(us)) {
            (Some(c), Some(o)) => assert_eq!(*c, o, "{us}"),
            (_, None) => {
                let y0 = (YEAR0..YEAR10000).contains(&us);
                assert!(!y0, "{us}: in range but not written ({c:?})");
            }
            (None, Some(o)) => panic!("{us}: chrono has none, we wrote {o}"),
        }
    }

    fn ours(us: i64) -> Option<String> {
        let mut buf = [0u8; RFC3339_LEN];
        write(Timestamp(us), &mut buf).map(str::to_string)
    }

    /// Fuzz-like: a million pseudo-random instants over the whole 0000–9999 range and beyond,
    /// plus the edges (epoch, leap days, year and century boundaries, negative times), give
    /// chrono's text exactly, and instants outside 0000–9999 give `None` (the caller's
    /// fallback to chrono).
    #[test]
    fn same_text_as_chrono() {
        let mut cases = vec![
            0,
            -1,
            1,
            999_999,
            1_000_000,
            -1_000_000,
            -999_999,
            86_400_000_000 - 1,
            951_782_400_000_000,     // 2000-02-29
            951_868_800_000_000 - 1, // 2000-02-29T23:59:59.999999
            4_107_542_400_000_000,   // 2100-03-01
            1_795_000_000_123_456,   // 2026-11-18
            YEAR0,
            YEAR0 - 1,
            YEAR10000,
            YEAR10000 - 1,
            i64::MIN,
            i64::MAX,
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..1_000_000u64 {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
            let us = match i % 3 {
                // anywhere in 0000..10000 (and a little past both ends)
                0 => {
                    YEAR0 - 1_000_000_000
                        + (r % ((YEAR10000 - YEAR0) as u64 + 2_000_000_000)) as i64
                }
                // near now, where real data is
                1 => 1_700_000_000_000_000 + (r % 400_000_000_000_000) as i64,
                // any i64
                _ => r as i64,
            };
            cases.push(us);
        }
        cases.into_iter().for_each(same_as_chrono);
    }

    /// The one-day cache: runs of instants of one day, across midnight and back, around the
    /// edges of the range (a cached day followed by one out of range, and the reverse) give
    /// chrono's text.
    #[test]
    fn runs_of_one_day_give_chronos_text() {
        let mut cases = Vec::new();
        for start in [
            0,
            1_795_000_000_123_456,
            YEAR10000 - 2 * DAY,
            YEAR0 - DAY,
            -DAY,
        ] {
            for k in 0..400 {
                // Forwards over three days in uneven steps, then once back to the first.
                cases.push(start + k * (DAY / 130) + k % 7);
            }
            cases.push(start);
        }
        cases.into_iter().for_each(same_as_chrono);
    }
}
