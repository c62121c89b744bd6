//! Which claimed row starts next, and how many rows the worker keeps claimed.
//!
//! * **Automatic prefetch.** While a claim travels to the web database and back, the worker's
//!   slots are refilled from the rows it already holds; with a far database (30 ms) and fast
//!   postings (a few ms) a fixed buffer empties long before the claim returns and the ERP
//!   connections starve. [`Pace`] measures the claim's round trip and how long a document holds
//!   its slot, and sizes the buffer to [`AUTO_MARGIN`] times what the slots consume during one
//!   claim (Little's law), between `concurrency` and `batch_size`. On loopback this stays at
//!   `concurrency`, the fixed default it replaces.
//! * **Series first.** Mikro numbers a series under a lock held until the posting commits, so
//!   two documents of one series never post in parallel: the second holds an ERP connection
//!   idle while it waits. The worker starts a held row whose series is not being posted before
//!   one whose series is ([`pick`]); rows of one series still start in the order they were
//!   claimed.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::config::PostingConfig;
use crate::posting::{DocKind, LoadedDocument};

use super::Job;

/// A Mikro numbering series as its lock sees it: kind (evrak type) and the series in Turkish
/// upper case (`posting::numbering::series_resource`).
pub(crate) type SeriesKey = (DocKind, String);

/// The series `job` will be numbered in, when the claim read its document; None when it is not
/// known (no document read, or one that cannot be posted). Chosen as the posting chooses it
/// ([`crate::posting::series`]), keyed as its lock is.
pub(crate) fn series_key(job: &Job, cfg: Option<&PostingConfig>) -> Option<SeriesKey> {
    let cfg = cfg?;
    let (web, configured) = match job.document.as_deref()? {
        LoadedDocument::Sale(s) => (s.seri.as_deref(), cfg.sale_series.as_str()),
        LoadedDocument::Collection(c) => (c.seri.as_deref(), cfg.collection_series.as_str()),
        LoadedDocument::Invalid { .. } => return None,
    };
    // A series the posting rejects has no lock to wait for: its document fails at once.
    let seri = crate::posting::series(web, configured, "", "").ok()?;
    Some((job.kind, crate::posting::text::turkish_upper(&seri)))
}

/// A claimed row waiting for a slot, with its series.
pub(crate) struct Ready {
    pub job: Job,
    pub series: Option<SeriesKey>,
}

/// The index in `ready` of the row to start next: the first whose series is not being posted
/// (`busy`), else the first (today's order: its posting waits for the series' lock).
pub(crate) fn pick(ready: &VecDeque<Ready>, busy: &HashMap<SeriesKey, usize>) -> Option<usize> {
    if ready.is_empty() {
        return None;
    }
    if busy.is_empty() {
        return Some(0);
    }
    let free = ready.iter().position(|r| match &r.series {
        Some(k) => !busy.contains_key(k),
        None => true,
    });
    Some(free.unwrap_or(0))
}

/// The buffer is sized to this many times the rows consumed during one claim: the claim leaves
/// when the buffer is below half of it, so 1.5 claims' worth is left when it leaves and half a
/// claim's worth when it returns (room for a slower claim or faster postings).
pub(crate) const AUTO_MARGIN: f64 = 3.0;

/// Weight of a new sample in the running means.
const SMOOTHING: f64 = 0.2;

/// The measured pace of the worker (running means), for the automatic prefetch.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Pace {
    /// A claim statement, sent to answered (seconds).
    claim: Option<f64>,
    /// A document's slot, started to done (seconds).
    hold: Option<f64>,
}

fn mean(old: Option<f64>, sample: Duration) -> Option<f64> {
    let s = sample.as_secs_f64();
    Some(match old {
        Some(m) => m + SMOOTHING * (s - m),
        None => s,
    })
}

impl Pace {
    /// One claim took `d`.
    pub(crate) fn claim_took(&mut self, d: Duration) {
        self.claim = mean(self.claim, d);
    }

    /// One document held its slot for `d`.
    pub(crate) fn slot_held(&mut self, d: Duration) {
        self.hold = mean(self.hold, d);
    }

    /// Rows to keep claimed beyond those in flight: `pinned` when the setting gives it, else
    /// [`AUTO_MARGIN`] × the rows `concurrency` slots consume during one claim, at least
    /// `concurrency` (also before anything was measured) and at most `batch_size`.
    pub(crate) fn prefetch(
        &self,
        pinned: Option<usize>,
        concurrency: usize,
        batch: usize,
    ) -> usize {
        if let Some(n) = pinned {
            return n;
        }
        let floor = concurrency.max(1);
        let ceiling = batch.max(floor);
        let (Some(claim), Some(hold)) = (self.claim, self.hold) else {
            return floor;
        };
        // A slot finishes a document every `hold`: the slots consume concurrency / hold rows
        // per second. (Hold is never 0 on a real clock; a floor keeps the ratio finite.)
        let need = concurrency as f64 * claim / hold.max(1e-5);
        let want = (need * AUTO_MARGIN).ceil();
        if want >= ceiling as f64 {
            ceiling
        } else {
            (want as usize).clamp(floor, ceiling)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn prefetch_follows_the_claim_round_trip_within_bounds() {
        let mut p = Pace::default();
        assert_eq!(
            p.prefetch(None, 4, 100),
            4,
            "nothing measured: = concurrency"
        );
        p.claim_took(ms(1));
        p.slot_held(ms(8));
        assert_eq!(p.prefetch(None, 4, 100), 4, "loopback: = concurrency");
        let mut far = Pace::default();
        far.claim_took(ms(30));
        far.slot_held(ms(8));
        // 4 slots × 30 / 8 = 15 rows per claim, × 3.
        assert_eq!(far.prefetch(None, 4, 100), 45);
        assert_eq!(far.prefetch(None, 4, 20), 20, "at most batch_size");
        assert_eq!(far.prefetch(Some(7), 4, 100), 7, "a setting pins it");
        assert_eq!(far.prefetch(Some(0), 4, 100), 0, "0 turns it off");
        let mut stuck = Pace::default();
        stuck.claim_took(Duration::from_secs(30));
        stuck.slot_held(Duration::ZERO);
        assert_eq!(stuck.prefetch(None, 4, 100), 100);
        assert_eq!(
            stuck.prefetch(None, 300, 100),
            300,
            "never below concurrency"
        );
    }

    #[test]
    fn running_means_move_toward_new_samples() {
        let mut p = Pace::default();
        p.claim_took(ms(10));
        p.slot_held(ms(10));
        for _ in 0..30 {
            p.claim_took(ms(40));
        }
        // 4 × 40 / 10 × 3 = 48 once the mean has moved.
        let n = p.prefetch(None, 4, 100);
        assert!((46..=48).contains(&n), "{n}");
    }

    #[test]
    fn a_free_series_starts_first_and_a_series_keeps_its_order() {
        let key = |s: &str| Some((DocKind::Satis, s.to_string()));
        let row = |s: Option<SeriesKey>| Ready {
            job: test_job(),
            series: s,
        };
        let ready: VecDeque<Ready> =
            VecDeque::from(vec![row(key("A")), row(key("A")), row(key("B")), row(None)]);
        let mut busy: HashMap<SeriesKey, usize> = HashMap::new();
        assert_eq!(pick(&ready, &busy), Some(0));
        busy.insert((DocKind::Satis, "A".into()), 1);
        assert_eq!(pick(&ready, &busy), Some(2), "B before the second A");
        busy.insert((DocKind::Satis, "B".into()), 1);
        assert_eq!(pick(&ready, &busy), Some(3), "no series: free");
        let only_busy: VecDeque<Ready> = VecDeque::from(vec![row(key("A")), row(key("B"))]);
        assert_eq!(pick(&only_busy, &busy), Some(0), "all busy: the oldest");
        assert_eq!(pick(&VecDeque::new(), &busy), None);
    }

    fn test_job() -> Job {
        let now = chrono::Utc::now();
        Job {
            id: uuid::Uuid::new_v4(),
            kind: DocKind::Satis,
            entity_id: uuid::Uuid::new_v4(),
            attempt: 1,
            created_at: now,
            first_attempt_at: now,
            claimed_at: now,
            claimed_instant: std::time::Instant::now(),
            lease_expiries: 0,
            document: None,
            posted: None,
        }
    }
}
