//! Wall-clock time as the store and the receipts record it: unix milliseconds.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Today's calendar date in Denmark (CET, CEST in summer). The under-15 rule of Digital Post
/// turns on the Danish calendar day, whatever the server's own time zone.
pub fn danish_today() -> time::Date {
    danish_date(time::OffsetDateTime::now_utc())
}

/// The Danish calendar date at an instant. Denmark keeps Central European Time, UTC+1, and
/// summer time, UTC+2, from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last
/// Sunday of October (the EU's rule since 1996, Directive 2000/84/EC). The rule is fixed by law,
/// so it is computed here rather than read from a time-zone database the host may not have.
pub fn danish_date(at: time::OffsetDateTime) -> time::Date {
    let at = at.to_offset(time::UtcOffset::UTC);
    let year = at.year();
    let summer_starts = last_sunday_0100_utc(year, time::Month::March);
    let summer_ends = last_sunday_0100_utc(year, time::Month::October);
    let hours = match (summer_starts, summer_ends) {
        (Some(start), Some(end)) if at >= start && at < end => 2,
        _ => 1,
    };
    (at + time::Duration::hours(hours)).date()
}

fn last_sunday_0100_utc(year: i32, month: time::Month) -> Option<time::OffsetDateTime> {
    let last_day = time::Date::from_calendar_date(year, month, month.length(year)).ok()?;
    let back = last_day.weekday().number_days_from_sunday();
    let sunday = last_day - time::Duration::days(i64::from(back));
    Some(sunday.with_hms(1, 0, 0).ok()?.assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn danish_dates_follow_cet_and_cest() {
        // Winter: UTC+1, the day turns at 23:00 UTC.
        assert_eq!(
            danish_date(datetime!(2026-01-14 22:59 UTC)),
            time::macros::date!(2026 - 01 - 14)
        );
        assert_eq!(
            danish_date(datetime!(2026-01-14 23:00 UTC)),
            time::macros::date!(2026 - 01 - 15)
        );
        // Summer: UTC+2, the day turns at 22:00 UTC.
        assert_eq!(
            danish_date(datetime!(2026-06-14 22:00 UTC)),
            time::macros::date!(2026 - 06 - 15)
        );
        assert_eq!(
            danish_date(datetime!(2026-06-14 21:59 UTC)),
            time::macros::date!(2026 - 06 - 14)
        );
        // 2026: summer time from 29 March 01:00 UTC to 25 October 01:00 UTC.
        assert_eq!(
            danish_date(datetime!(2026-03-28 22:30 UTC)),
            time::macros::date!(2026 - 03 - 28)
        );
        assert_eq!(
            danish_date(datetime!(2026-10-24 22:30 UTC)),
            time::macros::date!(2026 - 10 - 25)
        );
        assert_eq!(
            danish_date(datetime!(2026-10-25 22:30 UTC)),
            time::macros::date!(2026 - 10 - 25)
        );
    }
}
