//! Checks a document must pass before it is written into Mikro, each failing with one line that
//! names the web document (number and id), the field, the value and the fix.
//!
//! * Dates: within SQL Server `datetime` (1753-01-01 … 9999-12-31) and within the plausibility
//!   window: not before `earliest_date` (default 2000-01-01) and not more than `max_days_ahead`
//!   days (default 1) after today in the company's time zone. A due date only has to fit
//!   `datetime` and not fall before its document date: cheques are post-dated, often by months.
//! * A sale's balance (see [`balance`]).

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{PostError, PostingConfig};

/// First and last day SQL Server `datetime` can hold.
fn datetime_range() -> (NaiveDate, NaiveDate) {
    (
        NaiveDate::from_ymd_opt(1753, 1, 1).unwrap_or(NaiveDate::MIN),
        NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or(NaiveDate::MAX),
    )
}

/// Today in the company's time zone.
pub fn today(cfg: &PostingConfig) -> NaiveDate {
    crate::mikro::local_now(cfg.tz).date()
}

/// A date SQL Server `datetime` can store.
pub fn storable(doc: &str, field: &str, d: NaiveDate) -> Result<(), PostError> {
    let (lo, hi) = datetime_range();
    if d < lo || d > hi {
        return Err(PostError::Data(format!(
            "{doc}: {field} {d} is outside the dates SQL Server can store ({lo} to {hi}): correct \
             {field}"
        )));
    }
    Ok(())
}

/// A document date: storable and within the plausibility window.
pub fn document_date(
    doc: &str,
    field: &str,
    d: NaiveDate,
    cfg: &PostingConfig,
) -> Result<(), PostError> {
    storable(doc, field, d)?;
    if d < cfg.earliest_date {
        return Err(PostError::Data(format!(
            "{doc}: {field} {d} is before {}, the earliest document date accepted: correct \
             {field}, or if the date is real set MIKRO_SYNC_EARLIEST_DATE to {d} or earlier",
            cfg.earliest_date
        )));
    }
    let today = today(cfg);
    let ahead = (d - today).num_days();
    if ahead > cfg.max_days_ahead {
        return Err(PostError::Data(format!(
            "{doc}: {field} {d} is {ahead} days after today ({today} in {}), more than the {} \
             accepted: correct {field}, or if the date is real set MIKRO_SYNC_MAX_DAYS_AHEAD to \
             {ahead} or more",
            cfg.tz, cfg.max_days_ahead
        )));
    }
    Ok(())
}

/// A sale's lines must add up to its header before it is posted: `toplam_tutar` = Σ over the
/// lines of (quantity × unit price − line discounts + line VAT) − header discounts, within one
/// cent per line. Mikro keeps each line's amounts rounded to 2 decimals, so a web app that
/// rounds the VAT once on the header (or per line differently) may differ from the sum of the
/// rounded lines by up to half a cent per line; one cent per line covers that and nothing that
/// a missing or wrong line could hide behind (the smallest line is worth at least a cent).
///
/// Not balanced is [`PostError::NotReady`]: the lines may still be coming (committed after the
/// header); the retry policy fails it after the settle window with this message.
pub fn balance(
    doc: &str,
    total: Decimal,
    header_discounts: Decimal,
    lines: impl IntoIterator<Item = Decimal>,
) -> Result<(), PostError> {
    let mut n = 0u32;
    let mut sum = Decimal::ZERO;
    for l in lines {
        n += 1;
        sum += l;
    }
    if n == 0 {
        return Err(PostError::NotReady(format!(
            "{doc} has no lines yet (toplam_tutar {total:.2}): if none are coming, add its lines \
             to satis_kalemleri or delete the sale, then set status = 'pending' on its sync_queue row"
        )));
    }
    let expected = sum - header_discounts;
    let tolerance = Decimal::new(i64::from(n), 2);
    if (total - expected).abs() > tolerance {
        let lines = if n == 1 { "line" } else { "lines" };
        let disc = if header_discounts.is_zero() {
            String::new()
        } else {
            format!(" minus header discounts {header_discounts:.2}")
        };
        return Err(PostError::NotReady(format!(
            "{doc}: toplam_tutar {total:.2} does not match its lines' net + VAT \
             {expected:.2}{disc} ({n} {lines}, tolerance {tolerance:.2}: one cent per line): if no \
             lines are still coming, correct satislar.toplam_tutar or the lines in \
             satis_kalemleri so they agree, then set status = 'pending' on its sync_queue row"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn balance_tolerance_is_a_cent_per_line() {
        let three = || [d("0.10"), d("0.10"), d("0.10")];
        assert!(balance("s", d("0.33"), Decimal::ZERO, three()).is_ok());
        assert!(balance("s", d("0.27"), Decimal::ZERO, three()).is_ok());
        assert!(matches!(
            balance("s", d("0.34"), Decimal::ZERO, three()),
            Err(PostError::NotReady(m)) if m.contains("0.34") && m.contains("0.30") && m.contains("0.03")
        ));
        assert!(balance("s", d("0.20"), d("0.10"), three()).is_ok());
        assert!(matches!(
            balance("s", d("1"), Decimal::ZERO, []),
            Err(PostError::NotReady(m)) if m.contains("no lines yet")
        ));
    }

    #[test]
    fn dates() {
        let cfg = PostingConfig::default();
        let t = today(&cfg);
        assert!(document_date("s", "f", t, &cfg).is_ok());
        assert!(document_date("s", "f", t + chrono::Duration::days(1), &cfg).is_ok());
        let e = document_date("s", "f", t + chrono::Duration::days(2), &cfg).unwrap_err();
        assert!(e.to_string().contains("MIKRO_SYNC_MAX_DAYS_AHEAD"), "{e}");
        let e = document_date(
            "s",
            "f",
            NaiveDate::from_ymd_opt(1999, 12, 31).unwrap(),
            &cfg,
        )
        .unwrap_err();
        assert!(e.to_string().contains("MIKRO_SYNC_EARLIEST_DATE"), "{e}");
        let e = document_date("s", "f", NaiveDate::from_ymd_opt(1700, 1, 1).unwrap(), &cfg)
            .unwrap_err();
        assert!(e.to_string().contains("SQL Server can store"), "{e}");
    }
}
