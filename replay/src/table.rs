//! A row of results and the markdown table they make.

use std::fmt::Write;

use crate::error::Error;
use crate::policy::Policy;

/// The largest capacity: the exact LRU numbers its slots with `u32`.
pub const MAX_CAPACITY: usize = u32::MAX as usize - 1;

/// Checks capacities: each in `1..=MAX_CAPACITY`, at least one.
///
/// # Errors
///
/// [`Error::Invalid`] naming `--capacities`.
pub fn check_capacities(capacities: &[usize]) -> Result<(), Error> {
    if capacities.is_empty() {
        return Err(Error::invalid("--capacities", "give at least one"));
    }
    match capacities.iter().find(|&&c| c == 0 || c > MAX_CAPACITY) {
        Some(c) => Err(Error::invalid(
            "--capacities",
            format!("{c} is outside 1..={MAX_CAPACITY} (a cache holds at least one entry)"),
        )),
        None => Ok(()),
    }
}

/// One workload at one capacity: the hits of every policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The workload and its parameters.
    pub workload: String,
    /// The cache size in entries.
    pub capacity: usize,
    /// The requests replayed.
    pub requests: u64,
    /// Hits, indexed by [`Policy::index`].
    pub hits: [u64; 5],
}

impl Row {
    /// The hits of `policy`.
    pub fn hits_of(&self, policy: Policy) -> u64 {
        self.hits[policy.index()]
    }

    /// The hit ratio of `policy`, in percent.
    pub fn percent(&self, policy: Policy) -> f64 {
        100.0 * self.hits_of(policy) as f64 / self.requests.max(1) as f64
    }

    /// The peer (moka, quick_cache or LRU) with the most hits; the first
    /// listed on a tie.
    pub fn best_peer(&self) -> Policy {
        Policy::PEERS
            .into_iter()
            .reduce(|best, p| {
                if self.hits_of(p) > self.hits_of(best) {
                    p
                } else {
                    best
                }
            })
            .expect("three peers")
    }

    /// Whether ours hits at least as often as the best peer.
    pub fn ours_at_least_best(&self) -> bool {
        self.hits_of(Policy::Ours) >= self.hits_of(self.best_peer())
    }
}

/// The table in markdown, one row per (workload, capacity), then the
/// summary line: on how many rows ours >= the best peer.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::from("| workload | capacity |");
    for p in Policy::ALL {
        let _ = write!(out, " {} |", p.name());
    }
    out.push_str(" ours - best peer |\n|:---|---:|");
    out.push_str(&"---:|".repeat(Policy::ALL.len() + 1));
    out.push('\n');
    for row in rows {
        let best = row.best_peer();
        let _ = write!(out, "| {} | {} |", row.workload, row.capacity);
        for p in Policy::ALL {
            let cell = format!("{:.2}", row.percent(p));
            if p == best {
                let _ = write!(out, " **{cell}** |");
            } else {
                let _ = write!(out, " {cell} |");
            }
        }
        let gap = row.percent(Policy::Ours) - row.percent(best);
        let mark = if row.ours_at_least_best() {
            "yes"
        } else {
            "no"
        };
        let _ = writeln!(out, " {gap:+.2} ({mark}, vs {}) |", best.name());
    }
    out.push('\n');
    out.push_str(&summary(rows));
    out.push('\n');
    out
}

/// One line: on how many rows ours >= the best of moka, quick_cache and LRU.
pub fn summary(rows: &[Row]) -> String {
    let good = rows.iter().filter(|r| r.ours_at_least_best()).count();
    format!(
        "TtlCache >= the best of moka, quick_cache and LRU on {good} of {} rows.",
        rows.len()
    )
}
