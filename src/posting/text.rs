//! Text that goes into Mikro columns: free text is truncated to the column width (with a warning,
//! so the document still posts), codes that do not fit are data errors (a cut code would point at
//! a different or non-existent account).
//!
//! Widths are counted in UTF-16 code units, SQL Server's measure for `nvarchar(n)`; Turkish letters
//! are one unit each.

use super::PostError;

/// Width of Mikro code columns (`cha_kod`, `sth_stok_kod`, `sck_refno` …), from the TSVs.
pub const CODE_MAX: usize = 25;
/// `cha_aciklama`, `sth_aciklama`: 50 (TSV).
pub const ACIKLAMA_MAX: usize = 50;
/// `cha_belge_no`, `sth_belge_no`: nvarchar(50) per the TSVs (DOMAIN §5.1 saw values up to 20; the
/// TSV wins).
pub const BELGE_NO_MAX: usize = 50;
/// `cha_evrakno_seri`: nvarchar(20).
pub const SERI_MAX: usize = 20;
/// Other free-text columns of ODEME_EMIRLERI (`sck_borclu`, `sck_no`, …): nvarchar(50).
pub const TEXT50_MAX: usize = 50;

/// Upper case as Turkish_CI_AS pairs letters: `i` → `İ`, `ı` → `I`, every other letter by its
/// one-character upper case (a letter whose upper case is longer, such as `ß`, stays as it is, so
/// the width never changes). Two series are one range in Mikro exactly when these are equal.
pub fn turkish_upper(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'i' => 'İ',
            'ı' => 'I',
            c => {
                let mut up = c.to_uppercase();
                match (up.next(), up.next()) {
                    (Some(u), None) => u,
                    _ => c,
                }
            }
        })
        .collect()
}

/// Length as SQL Server counts it.
pub fn sql_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Cuts `s` to at most `max` UTF-16 units (never inside a character) and logs a warning naming
/// the field when it had to cut, so operators can see that Mikro holds a shortened text.
pub fn truncate(field: &'static str, s: &str, max: usize) -> String {
    if sql_len(s) <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for ch in s.chars() {
        let w = ch.len_utf16();
        if used + w > max {
            break;
        }
        used += w;
        out.push(ch);
    }
    tracing::warn!(
        field,
        original_len = sql_len(s),
        max,
        kept = %out,
        "text longer than the Mikro column; truncated"
    );
    out
}

/// A code that must fit its column unchanged: trimmed, non-empty, at most `max` units. `what`
/// describes the field for the operator ("customer code of cari_hesaplar 7f3…").
pub fn code(what: &str, s: &str, max: usize) -> Result<String, PostError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(PostError::Data(format!("{what} is empty")));
    }
    let n = sql_len(t);
    if n > max {
        return Err(PostError::Data(format!(
            "{what} {t:?} is {n} characters long; Mikro codes hold at most {max}: shorten the code \
             or map it to a shorter Mikro code"
        )));
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("f", "ğüşıöçİ", 3), "ğüş");
        assert_eq!(truncate("f", "abc", 3), "abc");
        assert_eq!(truncate("f", "", 3), "");
        assert_eq!(sql_len(&truncate("f", &"ş".repeat(80), 50)), 50);
    }

    #[test]
    fn turkish_upper_pairs_dotted_and_dotless_i() {
        assert_eq!(turkish_upper("st"), "ST");
        assert_eq!(turkish_upper("şt"), "ŞT");
        assert_eq!(turkish_upper("is"), "İS");
        assert_eq!(turkish_upper("İs"), "İS");
        assert_eq!(turkish_upper("ıs"), "IS");
        assert_ne!(turkish_upper("is"), turkish_upper("IS"));
        assert_eq!(turkish_upper("straße"), "STRAßE");
    }

    #[test]
    fn codes() {
        assert_eq!(code("c", " 120.01.001 ", 25).unwrap(), "120.01.001");
        assert!(matches!(code("c", "   ", 25), Err(PostError::Data(_))));
        assert!(
            matches!(code("c", &"X".repeat(26), 25), Err(PostError::Data(m)) if m.contains("26"))
        );
    }
}
