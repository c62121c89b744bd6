//! Company-zone time. Mikro stores local wall-clock time without a zone; sending UTC put sales on
//! the previous day in production, so every datetime written here is made in `cfg.tz`.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// A document date as Mikro stores it: midnight local, date only.
pub fn document_date(d: NaiveDate) -> NaiveDateTime {
    d.and_time(NaiveTime::MIN)
}

/// `cha_vade` on collections: the due date as the integer `YYYYMMDD`.
pub fn vade_int(d: NaiveDate) -> i32 {
    d.year() * 10_000 + d.month() as i32 * 100 + d.day() as i32
}

/// "Now" for create/lastup columns: local wall-clock time in the company's zone, cut to whole
/// milliseconds (the traces show ms precision; `datetime` then rounds to 1/300 s).
pub fn now_local(tz: chrono_tz::Tz) -> NaiveDateTime {
    let now = crate::mikro::local_now(tz);
    let ms = now.nanosecond() / 1_000_000;
    now.with_nanosecond(ms * 1_000_000).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vade_is_yyyymmdd() {
        assert_eq!(
            vade_int(NaiveDate::from_ymd_opt(2025, 11, 12).unwrap()),
            20251112
        );
        assert_eq!(
            vade_int(NaiveDate::from_ymd_opt(2026, 1, 5).unwrap()),
            20260105
        );
    }

    #[test]
    fn now_is_local_not_utc() {
        let ist = now_local(chrono_tz::Europe::Istanbul);
        let utc = chrono::Utc::now().naive_utc();
        // Istanbul is UTC+3 all year.
        let diff = (ist - utc).num_minutes();
        assert!((175..=185).contains(&diff), "diff {diff} min");
    }
}
