//! Checks that the Mikro codes a document refers to exist in Mikro's master tables before rows
//! pointing at them are written. The Mikro program reads the account (and the bank / cash box, and
//! each product) before it saves; a web mapping pointing at a code Mikro does not know would
//! create movements on a non-existent account. A missing code is a data error with the mapping
//! table to fix.
//!
//! The checks are batched into the numbering statement (see [`super::numbering`]), so they cost no
//! extra round trip. Product codes go in an `IN` list padded to a power of two (repeating the last
//! code), which keeps the number of distinct statement texts small for the server's plan cache.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use tiberius::{Query, Row};

use super::erp::{get_int, get_text};
use super::PostError;

/// Largest `IN` list in one SELECT.
const IN_CHUNK: usize = 256;

/// Codes one document uses.
#[derive(Debug, Clone, Default)]
pub struct Codes {
    /// `CARI_HESAPLAR.cari_kod`.
    pub cari: String,
    /// The web customer (`cari_hesaplar.id`), for the message naming the mapping row to fix.
    pub cari_web_id: Option<uuid::Uuid>,
    /// Distinct `STOKLAR.sto_kod` values.
    pub stoks: Vec<String>,
    /// The web product of each entry of `stoks` (same order), for messages.
    pub stok_web_ids: Vec<Option<uuid::Uuid>>,
    /// `BANKALAR.ban_kod`.
    pub bank: Option<String>,
    /// `KASALAR.kas_kod` (cash box or cheque / note portfolio box).
    pub kasa: Option<String>,
}

impl Codes {
    /// Deduplicates product codes, keeping SQL Server's case-insensitive equality in mind.
    pub fn with_stoks<'a>(
        mut self,
        codes: impl IntoIterator<Item = (&'a str, Option<uuid::Uuid>)>,
    ) -> Self {
        let mut seen = BTreeSet::new();
        for (c, id) in codes {
            if seen.insert(fold(c)) {
                self.stoks.push(c.to_string());
                self.stok_web_ids.push(id);
            }
        }
        self
    }

    fn chunks(&self) -> Vec<(usize, usize)> {
        // (start index, padded size) per IN chunk
        let mut v = Vec::new();
        let mut i = 0;
        while i < self.stoks.len() {
            let n = (self.stoks.len() - i).min(IN_CHUNK);
            v.push((i, n.next_power_of_two()));
            i += n;
        }
        v
    }

    /// The product codes as `IN` lists of padded sizes (the last code repeated).
    pub fn in_lists(&self) -> Vec<Vec<String>> {
        self.chunks()
            .into_iter()
            .map(|(start, size)| {
                let n = (self.stoks.len() - start).min(IN_CHUNK);
                (0..size)
                    .map(|i| self.stoks[start + i.min(n - 1)].clone())
                    .collect()
            })
            .collect()
    }

    /// A key naming the statement shape (for the statement-text cache).
    pub fn shape(&self) -> String {
        let sizes: Vec<String> = self.chunks().iter().map(|c| c.1.to_string()).collect();
        format!(
            "c{}s{}b{}k{}",
            1,
            sizes.join("_"),
            u8::from(self.bank.is_some()),
            u8::from(self.kasa.is_some())
        )
    }

    /// Number of result sets the SQL produces.
    pub fn sets(&self) -> usize {
        1 + self.chunks().len()
            + usize::from(self.bank.is_some())
            + usize::from(self.kasa.is_some())
    }

    /// The check statements with parameters numbered from `first`; returns the SQL and the
    /// number of parameters it uses.
    pub fn sql(&self, first: usize) -> (String, usize) {
        let mut p = first;
        let mut s = format!("SELECT COUNT(*) AS n FROM dbo.CARI_HESAPLAR WHERE cari_kod = @P{p}");
        p += 1;
        for (_, size) in self.chunks() {
            s.push_str(";\nSELECT sto_kod FROM dbo.STOKLAR WHERE sto_kod IN (");
            for i in 0..size {
                if i > 0 {
                    s.push_str(", ");
                }
                let _ = write!(s, "@P{}", p + i);
            }
            s.push(')');
            p += size;
        }
        if self.bank.is_some() {
            let _ = write!(
                s,
                ";\nSELECT COUNT(*) AS n FROM dbo.BANKALAR WHERE ban_kod = @P{p}"
            );
            p += 1;
        }
        if self.kasa.is_some() {
            let _ = write!(
                s,
                ";\nSELECT COUNT(*) AS n FROM dbo.KASALAR WHERE kas_kod = @P{p}"
            );
            p += 1;
        }
        (s, p - first)
    }

    /// Binds the parameters of [`Codes::sql`].
    pub fn bind(&self, q: &mut Query<'_>) {
        q.bind(self.cari.clone());
        for (start, size) in self.chunks() {
            let n = (self.stoks.len() - start).min(IN_CHUNK);
            for i in 0..size {
                let idx = start + i.min(n - 1);
                q.bind(self.stoks[idx].clone());
            }
        }
        if let Some(b) = &self.bank {
            q.bind(b.clone());
        }
        if let Some(k) = &self.kasa {
            q.bind(k.clone());
        }
    }

    /// Evaluates the result sets of [`Codes::sql`] (`sets` starts at its first set).
    pub fn verify(&self, sets: &[Vec<Row>], doc: &str) -> Result<(), PostError> {
        let count = |set: Option<&Vec<Row>>| {
            set.and_then(|s| s.first())
                .and_then(|r| get_int(r, 0))
                .unwrap_or(0)
        };
        let mut i = 0;
        if count(sets.get(i)) == 0 {
            let who = self
                .cari_web_id
                .map(|id| id.to_string())
                .unwrap_or_else(|| "<customer id>".into());
            return Err(PostError::Data(format!(
                "{doc}: customer {who} has Mikro code {:?}, which is not in Mikro's CARI_HESAPLAR: \
                 add or fix its row in int_kodmap_cari (web_cari_id='{who}', \
                 erp_cari_kod='<code in CARI_HESAPLAR>'), fix cari_hesaplar.cari_kodu, or create \
                 the account in Mikro",
                self.cari
            )));
        }
        i += 1;
        let mut found = BTreeSet::new();
        for _ in self.chunks() {
            if let Some(set) = sets.get(i) {
                for r in set {
                    if let Some(c) = get_text(r, 0) {
                        found.insert(fold(&c));
                    }
                }
            }
            i += 1;
        }
        let missing: Vec<String> = self
            .stoks
            .iter()
            .zip(&self.stok_web_ids)
            .filter(|(c, _)| !found.contains(&fold(c)))
            .map(|(c, id)| match id {
                Some(id) => format!(
                    "product {id} has Mikro code {c:?}: add or fix its row in int_kodmap_stok \
                     (web_stok_id='{id}', erp_stok_kod='<code in STOKLAR>') or fix \
                     stoklar.stok_kodu"
                ),
                None => format!("product code {c:?}"),
            })
            .collect();
        if !missing.is_empty() {
            return Err(PostError::Data(format!(
                "{doc}: not in Mikro's STOKLAR: {}",
                missing.join("; ")
            )));
        }
        if let Some(b) = &self.bank {
            if count(sets.get(i)) == 0 {
                return Err(PostError::Data(format!(
                    "{doc}: bank code {b:?} is not in Mikro's BANKALAR: fix int_kodmap_banka \
                     (erp_banka_kod), bankalar.ban_kod or MIKRO_SYNC_DEFAULT_BANKA"
                )));
            }
            i += 1;
        }
        if let Some(k) = &self.kasa {
            if count(sets.get(i)) == 0 {
                return Err(PostError::Data(format!(
                    "{doc}: cash-box code {k:?} is not in Mikro's KASALAR: fix int_kodmap_kasa \
                     (erp_kasa_kod), kasalar.kasa_kodu, or MIKRO_SYNC_DEFAULT_KASA / \
                     MIKRO_SYNC_CEK_KASA / MIKRO_SYNC_SENET_KASA"
                )));
            }
        }
        Ok(())
    }
}

/// Case folding close to Turkish_CI_AS equality (I/ı and İ/i pair up as in Turkish).
fn fold(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'I' => 'ı',
            'İ' => 'i',
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// After a failed gate in the posting batch: finds out which code is missing (one more query,
/// inside the still open transaction) and returns the data error for the operator.
pub async fn diagnose(erp: &mut crate::db::ErpClient, codes: &Codes, doc: &str) -> PostError {
    let (sql, _) = codes.sql(1);
    let mut q = Query::new(sql);
    codes.bind(&mut q);
    match super::erp::run(erp, q, codes.sets(), "checking master data").await {
        Ok(sets) => match codes.verify(&sets, doc) {
            Err(e) => e,
            Ok(()) => PostError::Transient(format!(
                "{doc}: Mikro master data changed while posting; retrying"
            )),
        },
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_in_lists() {
        let c = Codes {
            cari: "120.01.001".into(),
            ..Default::default()
        }
        .with_stoks(["A", "B", "a", "C"].map(|c| (c, None)));
        assert_eq!(c.stoks, vec!["A", "B", "C"]);
        let (sql, n) = c.sql(10);
        assert_eq!(n, 1 + 4);
        assert!(sql.contains("IN (@P11, @P12, @P13, @P14)"));
        assert_eq!(c.sets(), 2);
        assert_eq!(c.shape(), "c1s4b0k0");
    }
}
