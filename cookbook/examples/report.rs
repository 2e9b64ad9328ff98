//! An expensive monthly report, generated once and stored on disk.
//!
//! Dashboards and export jobs ask for the same month's report at the same
//! time. The first caller starts one generation and everyone waits for it;
//! the report is written to a folder, and later callers read the file. Two
//! details make "once" hold:
//!
//! - The flight looks in storage again before generating: a caller that
//!   found no file just before another flight stored one would otherwise
//!   generate the report a second time.
//! - Callers wait with their own deadlines, on `Group::do_chan`. One that
//!   gives up just stops waiting; the generation goes on for the others and
//!   its result is stored. (`work_deadline` would instead cancel the work when
//!   the last caller gives up: right for work nobody else will want, wrong
//!   for a report that is kept.) An operator can still stop it with
//!   `Reports::cancel`.
//!
//! Run: `cargo run --release -p singleflight-cookbook --example report`

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use singleflight_sync::{CancelToken, Error, Group};

/// A report's month: the group's key type, so only reports share its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Month {
    pub year: u16,
    pub month: u8,
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:02}", self.year, self.month)
    }
}

/// Where reports are kept: one file per month in a folder.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: &Path) -> Self {
        Store {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self, month: Month) -> PathBuf {
        self.dir.join(format!("sales-{month}.txt"))
    }

    /// The stored report, if there is one.
    pub fn read(&self, month: Month) -> io::Result<Option<String>> {
        match fs::read_to_string(self.path(month)) {
            Ok(report) => Ok(Some(report)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores a report: written aside, then renamed into place, so a reader
    /// sees the whole file or none.
    pub fn write(&self, month: Month, report: &str) -> io::Result<()> {
        let part = self.dir.join(format!("sales-{month}.txt.part"));
        fs::write(&part, report)?;
        fs::rename(part, self.path(month))
    }
}

/// Makes a month's report; should return early once the token is cancelled.
pub type Generator = dyn Fn(Month, &CancelToken) -> Result<String, String> + Send + Sync;

/// Where a caller's report came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// Read from storage.
    Disk,
    /// From a flight; `leader` if this caller started it.
    Flight { leader: bool, shared: bool },
}

impl fmt::Display for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Served::Disk => "read from disk",
            Served::Flight { leader: true, .. } => "from the flight it started",
            Served::Flight { leader: false, .. } => "from another caller's flight",
        })
    }
}

#[derive(Clone, Debug)]
pub struct Report {
    pub contents: Arc<str>,
    pub served: Served,
}

/// Why a caller got no report.
#[derive(Clone, Debug)]
pub enum ReportError {
    /// This caller's deadline passed; the generation goes on.
    TimedOut,
    /// Generating or storing failed. Every caller of that flight gets the
    /// same error; nothing is stored, so the next call tries again.
    Failed(String),
    /// The flight was cancelled, or its thread could not start.
    Flight(Error),
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::TimedOut => f.write_str("gave up waiting"),
            ReportError::Failed(why) => write!(f, "generation failed: {why}"),
            ReportError::Flight(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ReportError {}

/// Reports, generated at most once per month however many ask.
pub struct Reports {
    store: Arc<Store>,
    generate: Arc<Generator>,
    group: Group<Month, Result<Arc<str>, String>>,
    generated: Arc<AtomicUsize>,
}

impl Reports {
    pub fn new(dir: &Path, generate: Arc<Generator>) -> Self {
        Reports {
            store: Arc::new(Store::new(dir)),
            generate,
            group: Group::builder().name("reports").build(),
            generated: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The month's report: from storage if it is there, otherwise from the
    /// one flight that generates it, waiting no later than `deadline`.
    pub fn get(&self, month: Month, deadline: Instant) -> Result<Report, ReportError> {
        match self.store.read(month) {
            Ok(Some(report)) => Ok(Report {
                contents: report.into(),
                served: Served::Disk,
            }),
            Ok(None) => self.join_or_start(month, deadline),
            Err(e) => Err(ReportError::Failed(e.to_string())),
        }
    }

    /// Joins the month's flight, or starts one; the flight looks in storage
    /// once more before it generates anything.
    pub fn join_or_start(&self, month: Month, deadline: Instant) -> Result<Report, ReportError> {
        let (store, generate, generated) = (
            self.store.clone(),
            self.generate.clone(),
            self.generated.clone(),
        );
        let reply = self.group.do_chan(&month, move |token| {
            // A flight that ended after this caller looked may have stored it.
            if let Some(stored) = store.read(month).map_err(|e| e.to_string())? {
                return Ok(stored.into());
            }
            let report = generate(month, token)?;
            if token.is_cancelled() {
                return Err("cancelled".to_string());
            }
            store.write(month, &report).map_err(|e| e.to_string())?;
            generated.fetch_add(1, Ordering::SeqCst);
            Ok(report.into())
        });
        // Dropping `reply` at the deadline leaves the flight running.
        match reply.recv_deadline(deadline) {
            Ok(Ok(flight)) => Ok(Report {
                contents: flight.value.map_err(ReportError::Failed)?,
                served: Served::Flight {
                    leader: flight.leader,
                    shared: flight.shared,
                },
            }),
            Ok(Err(e)) => Err(ReportError::Flight(e)),
            Err(RecvTimeoutError::Timeout) => Err(ReportError::TimedOut),
            Err(RecvTimeoutError::Disconnected) => unreachable!("a flight always replies"),
        }
    }

    /// Stops the month's generation: its callers get `Error::Cancelled` at
    /// once, and nothing is stored. Returns whether one was running.
    pub fn cancel(&self, month: Month) -> bool {
        self.group.cancel(&month)
    }

    /// How many callers are waiting for the month's flight (0 if none runs).
    pub fn waiters(&self, month: Month) -> usize {
        self.group.waiters(&month)
    }

    /// How many reports were generated and stored.
    pub fn generated(&self) -> usize {
        self.generated.load(Ordering::SeqCst)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// The expensive part: totals a month of (synthetic, deterministic) sales,
/// `rows` of them, checking the token between batches.
pub fn monthly_report(month: Month, rows: u64, token: &CancelToken) -> Result<String, String> {
    const REGIONS: [&str; 4] = ["north", "south", "east", "west"];
    let mut orders = [0u64; 4];
    let mut cents = [0u64; 4];
    let mut x = u64::from(month.year) << 8 | u64::from(month.month);
    for row in 0..rows {
        if row % 65_536 == 0 && token.is_cancelled() {
            return Err("cancelled".to_string());
        }
        // splitmix64: a different, repeatable sale on every row.
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let region = (z % 4) as usize;
        orders[region] += 1;
        cents[region] += 100 + (z >> 32) % 50_000;
    }
    let mut out = format!("Sales report {month}\n\nregion       orders        revenue\n");
    for (i, name) in REGIONS.iter().enumerate() {
        out += &format!("{name:<8} {:>10} {:>14}\n", orders[i], money(cents[i]));
    }
    let total: u64 = cents.iter().sum();
    out += &format!("{:<8} {rows:>10} {:>14}\n", "total", money(total));
    Ok(out)
}

fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const ROWS: u64 = 40_000_000;
    let dir = tempfile::tempdir()?;
    let reports = Reports::new(
        dir.path(),
        Arc::new(|month, token: &CancelToken| monthly_report(month, ROWS, token)),
    );
    let may = Month {
        year: 2024,
        month: 5,
    };
    println!("Six callers ask for the {may} report ({ROWS} sales to total) at once:");
    let start = Instant::now();
    let deadlines = [50, 50, 30_000, 30_000, 30_000, 30_000].map(Duration::from_millis);
    let outcomes: Vec<_> = thread::scope(|s| {
        let handles: Vec<_> = deadlines
            .iter()
            .map(|&wait| {
                let reports = &reports;
                s.spawn(move || {
                    let got = reports.get(may, Instant::now() + wait);
                    (wait, got, start.elapsed())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (wait, got, at)) in outcomes.iter().enumerate() {
        let what = match got {
            Ok(report) => format!("{} bytes, {}", report.contents.len(), report.served),
            Err(e) => e.to_string(),
        };
        println!("  caller {i} (waits {wait:>7.2?}): after {at:>9.2?}: {what}");
    }
    println!("generated {} time(s)", reports.generated());

    let t = Instant::now();
    let again = reports.get(may, Instant::now() + Duration::from_secs(1))?;
    println!(
        "a later caller: {} in {:.2?}; still generated {} time(s)\n",
        again.served,
        t.elapsed(),
        reports.generated()
    );
    print!("{}", again.contents);
    println!("(stored at {})", reports.store().path(may).display());

    let june = Month {
        year: 2024,
        month: 6,
    };
    let waiting = thread::scope(|s| {
        let caller = s.spawn(|| reports.get(june, Instant::now() + Duration::from_secs(30)));
        while reports.waiters(june) == 0 {
            thread::yield_now();
        }
        reports.cancel(june);
        caller.join().unwrap()
    });
    println!(
        "\nthe {june} report, cancelled by an operator: {}; stored: {}",
        waiting.unwrap_err(),
        reports.store().read(june)?.is_some()
    );
    Ok(())
}
