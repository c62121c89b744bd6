//! ODEME_EMIRLERI reference numbers: `<prefix>-000-000-<year>-<8-digit running number>`
//! (`MC-000-000-2025-00000035`), unique per (`sck_tip`, `sck_refno`) and running, not random: the
//! next number is the highest existing one for that prefix and year + 1, read inside the posting
//! transaction under an application lock on (prefix, year).

use super::PostError;

/// Literal middle part of every traced refno.
const MIDDLE: &str = "-000-000-";

/// The part every refno of `prefix` in `year` starts with: `MC-000-000-2025-`.
pub fn year_prefix(prefix: &str, year: i32) -> String {
    format!("{prefix}{MIDDLE}{year}-")
}

/// The highest possible refno of `prefix` in `year` (upper bound of the range scan).
pub fn year_upper(prefix: &str, year: i32) -> String {
    format!("{}99999999", year_prefix(prefix, year))
}

/// Formats refno number `n`.
pub fn format(prefix: &str, year: i32, n: u32) -> String {
    format!("{}{n:08}", year_prefix(prefix, year))
}

/// The number after `max_existing` (the MAX(sck_refno) in the year's range, if any).
pub fn next(prefix: &str, year: i32, max_existing: Option<&str>) -> Result<String, PostError> {
    let n = match max_existing {
        None => 1,
        Some(m) => {
            let start = year_prefix(prefix, year);
            let digits = m
                .get(start.len()..)
                .filter(|d| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    PostError::Data(format!(
                        "ODEME_EMIRLERI holds refno {m:?}, which does not follow \
                         {start}<8 digits>; cannot continue the running number"
                    ))
                })?;
            let cur: u32 = digits.parse().map_err(|_| {
                PostError::Data(format!("ODEME_EMIRLERI refno {m:?} has no number"))
            })?;
            if cur >= 99_999_999 {
                return Err(PostError::Data(format!(
                    "refno range {start}… is exhausted (last {m})"
                )));
            }
            cur + 1
        }
    };
    Ok(format(prefix, year, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_numbers() {
        assert_eq!(next("MC", 2025, None).unwrap(), "MC-000-000-2025-00000001");
        assert_eq!(
            next("MK", 2025, Some("MK-000-000-2025-00000311")).unwrap(),
            "MK-000-000-2025-00000312"
        );
        assert_eq!(format("MH", 2026, 117).len(), 24);
        assert!(next("MS", 2025, Some("MS-000-000-2025-0000002X")).is_err());
        assert_eq!(year_upper("MS", 2025), "MS-000-000-2025-99999999");
    }
}
