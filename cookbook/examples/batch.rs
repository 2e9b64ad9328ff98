//! A batch job whose items share a few expensive dependencies.
//!
//! Prices 10,000 order lines on a rayon pool. Each line's product is in one
//! of 100 catalogues, and building a catalogue is expensive (here: CPU work
//! standing in for a download and a parse). Lines for the same catalogue are
//! spread over the whole batch and over every thread, so several threads
//! often need the same catalogue at the same moment.
//!
//! A `Group` alone would build each catalogue once per burst of concurrent
//! misses and forget it as soon as the build ends; the batch needs it for
//! the whole run. A `TtlCache` with a TTL longer than the batch does both:
//! concurrent misses share one build, and later lines hit the cache. Each
//! catalogue is built exactly once.
//!
//! Run: `cargo run --release -p singleflight-cookbook --example batch -- [--items N] [--catalogues N] [--threads N]`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use singleflight_sync::{Stats, TtlCache};

/// The size of a run.
#[derive(Clone, Debug)]
pub struct Config {
    pub items: u64,
    pub catalogues: u32,
    pub threads: usize,
    /// How much work building one catalogue is (hash rounds per price).
    pub build_cost: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            items: 10_000,
            catalogues: 100,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            build_cost: 20_000,
        }
    }
}

/// A catalogue: a price, in cents, for each of its products.
#[derive(Debug)]
pub struct Catalogue {
    pub prices: Vec<u64>,
}

/// Products per catalogue.
const PRODUCTS: u64 = 64;

/// The expensive dependency.
pub fn build_catalogue(id: u32, cost: u32) -> Catalogue {
    let prices = (0..PRODUCTS)
        .map(|product| {
            let mut x = u64::from(id) << 32 | product;
            for _ in 0..cost {
                x = mix(x);
            }
            100 + x % 10_000
        })
        .collect();
    Catalogue { prices }
}

/// An order line: which catalogue and product it needs, and how many.
#[derive(Clone, Copy, Debug)]
pub struct Line {
    pub catalogue: u32,
    pub product: u64,
    pub quantity: u64,
}

impl Line {
    /// Line `i` of the batch; catalogues are spread over the batch at random.
    pub fn nth(i: u64, catalogues: u32) -> Line {
        let h = mix(i);
        Line {
            catalogue: (h % u64::from(catalogues)) as u32,
            product: (h >> 32) % PRODUCTS,
            quantity: 1 + (h >> 48) % 5,
        }
    }

    pub fn price(&self, catalogue: &Catalogue) -> u64 {
        catalogue.prices[self.product as usize] * self.quantity
    }
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct Summary {
    pub items: u64,
    pub total_cents: u64,
    /// How many times a catalogue was built.
    pub builds: usize,
    pub cache: Stats,
    pub elapsed: Duration,
}

/// Prices every line on a pool of `config.threads`, building each catalogue
/// once through a `TtlCache`.
pub fn run(config: &Config) -> Summary {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.threads)
        .build()
        .expect("a thread pool");
    // Longer than any batch, so nothing expires mid-run; the default bound
    // (100,000 entries) leaves room for every catalogue.
    let catalogues: TtlCache<u32, Arc<Catalogue>> = TtlCache::new(Duration::from_secs(3600));
    let builds = AtomicUsize::new(0);
    let start = Instant::now();
    let total_cents = pool.install(|| {
        (0..config.items)
            .into_par_iter()
            .map(|i| {
                let line = Line::nth(i, config.catalogues);
                let catalogue = catalogues.get_or_load(&line.catalogue, || {
                    builds.fetch_add(1, Ordering::Relaxed);
                    // Sequential on purpose: a rayon call here could let
                    // this thread steal another line of the batch that needs
                    // this same catalogue, a re-entrant call.
                    Arc::new(build_catalogue(line.catalogue, config.build_cost))
                });
                line.price(&catalogue)
            })
            .sum()
    });
    Summary {
        items: config.items,
        total_cents,
        builds: builds.into_inner(),
        cache: catalogues.stats(),
        elapsed: start.elapsed(),
    }
}

/// The same total, on one thread, each catalogue built once up front: the
/// answer `run` must match.
pub fn expected_total(config: &Config) -> u64 {
    let catalogues: Vec<_> = (0..config.catalogues)
        .map(|id| build_catalogue(id, config.build_cost))
        .collect();
    (0..config.items)
        .map(|i| {
            let line = Line::nth(i, config.catalogues);
            line.price(&catalogues[line.catalogue as usize])
        })
        .sum()
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn parse_args() -> Result<Config, String> {
    let mut config = Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || -> Result<u64, String> {
            let v = args.next().ok_or(format!("{flag} needs a value"))?;
            v.parse().map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--items" => config.items = value()?,
            "--catalogues" => config.catalogues = value()?.clamp(1, u64::from(u32::MAX)) as u32,
            "--threads" => config.threads = value()?.max(1) as usize,
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    Ok(config)
}

fn main() {
    let config = match parse_args() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("batch: {e}\nusage: batch [--items N] [--catalogues N] [--threads N]");
            std::process::exit(2);
        }
    };
    println!(
        "pricing {} order lines from {} catalogues on {} rayon threads",
        config.items, config.catalogues, config.threads
    );
    let s = run(&config);
    println!(
        "done in {:.2?}: total {}.{:02}",
        s.elapsed,
        s.total_cents / 100,
        s.total_cents % 100
    );
    println!(
        "catalogues built: {} (one per catalogue used; {} without sharing)",
        s.builds, s.items
    );
    println!(
        "cache: {} hits, {} misses ({} of them joined a build already running), {} loads",
        s.cache.hits, s.cache.misses, s.cache.shared, s.cache.loads
    );
    let t = Instant::now();
    let expected = expected_total(&config);
    println!(
        "checked against a one-thread run ({:.2?}): {}",
        t.elapsed(),
        if expected == s.total_cents {
            "same total"
        } else {
            "DIFFERENT TOTAL"
        }
    );
    if expected != s.total_cents {
        std::process::exit(1);
    }
}
