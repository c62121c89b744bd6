//! VAT rate → Mikro VAT pointer (`sth_vergi_pntr`), and the header VAT buckets.
//!
//! The pointer is the index into Mikro's VAT table ([`crate::mikro::VAT_TABLE`]): 1 = 0 %, 2 = 1 %, 3 = 10 %, 4 = 20 %,
//! 5 = 26 % (DOMAIN §5.1; the old tool always sent 1, booking every line at 0 %). Any other rate is a
//! data error: guessing a pointer would book the wrong tax.
//!
//! Header buckets `cha_vergi1..10`: the captures only show 0 % invoices, so how Mikro fills them for
//! a taxed invoice is not captured. Our reading (DOMAIN's "best reading"): bucket N holds the sum of
//! the line VAT amounts whose pointer is N; buckets without lines stay 0.

use rust_decimal::Decimal;

use super::PostError;

/// The pointer for a VAT rate in percent (`20`, `20.00`, …).
pub fn pointer(rate: Decimal, what: &str) -> Result<i32, PostError> {
    let norm = rate.normalize();
    for (p, r) in crate::mikro::VAT_TABLE {
        if norm == Decimal::from(r) {
            return Ok(p);
        }
    }
    let allowed: Vec<String> = crate::mikro::VAT_TABLE
        .iter()
        .map(|(_, r)| r.to_string())
        .collect();
    Err(PostError::Data(format!(
        "{what} has VAT rate {norm} %, which has no Mikro VAT pointer; allowed rates: {} %: correct kdv_orani",
        allowed.join(", ")
    )))
}

/// Header VAT buckets from (pointer, VAT amount) pairs: index 0 is `cha_vergi1`.
pub fn buckets(lines: impl IntoIterator<Item = (i32, Decimal)>) -> [Decimal; 10] {
    let mut b = [Decimal::ZERO; 10];
    for (p, v) in lines {
        if let Ok(i) = usize::try_from(p - 1) {
            if i < 10 {
                b[i] += v;
            }
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(pointer(d("0"), "x").unwrap(), 1);
        assert_eq!(pointer(d("1.00"), "x").unwrap(), 2);
        assert_eq!(pointer(d("10"), "x").unwrap(), 3);
        assert_eq!(pointer(d("20.00"), "x").unwrap(), 4);
        assert_eq!(pointer(d("26"), "x").unwrap(), 5);
        assert!(
            matches!(pointer(d("18"), "line 3"), Err(PostError::Data(m)) if m.contains("18") && m.contains("line 3"))
        );
    }

    #[test]
    fn bucket_sums() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        let b = buckets([(4, d("2.00")), (4, d("3.50")), (3, d("1"))]);
        assert_eq!(b[3], d("5.50"));
        assert_eq!(b[2], d("1"));
        assert_eq!(b[0], Decimal::ZERO);
    }
}
