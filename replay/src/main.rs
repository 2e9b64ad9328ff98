//! `replay`: the hit-ratio table of `TtlCache`, moka, quick_cache, an exact
//! LRU and Belady's optimal, on synthetic workloads or your own traces.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use singleflight_replay::{
    check_capacities, quick_cache_shards, read_trace, render, replay, Error, Format, Input, Plan,
    Policy, Tuning, Workload, DEFAULT_MOKA_MAINTENANCE,
};

/// Replays key traces through TtlCache (singleflight-sync), moka 0.12,
/// quick_cache 0.7, an exact LRU and Belady's optimal (OPT, the ceiling) at
/// several capacities, and prints their hit ratios as a markdown table.
///
/// Each cache replays each trace alone, single-threaded, in order: a lookup,
/// and on a miss a load (an insert). There is no threads option: with one
/// thread and a seeded generator, a seed names one table. The table goes to
/// stdout; progress and timings go to stderr. Every hashed cache is built
/// with the same fixed hasher, so the table does not move between runs.
#[derive(Parser, Debug)]
#[command(
    name = "replay",
    version,
    after_help = "Examples:\n  \
        cargo run --release -p singleflight-replay\n  \
        cargo run --release -p singleflight-replay -- --workloads recency --capacities 5000,15000\n  \
        cargo run --release -p singleflight-replay -- --trace OLTP.lis --format arc --capacities 1000"
)]
struct Args {
    /// Cache sizes in entries, one row each per workload.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    capacities: Vec<usize>,

    /// Keys generated per synthetic workload.
    #[arg(long, default_value_t = 1_000_000)]
    requests: usize,

    /// Seed of the generators (StdRng).
    #[arg(long, default_value_t = 42)]
    seed: u64,

    /// The synthetic workloads to run. Default: all of them, or none when a
    /// --trace is given.
    #[arg(long, value_delimiter = ',', value_enum)]
    workloads: Option<Vec<Shape>>,

    /// A trace file to replay whole (repeatable), read as --format says.
    #[arg(long, value_name = "FILE")]
    trace: Vec<PathBuf>,

    /// How trace files spell their keys.
    #[arg(long, value_enum, default_value_t = FormatArg::Keys)]
    format: FormatArg,

    /// zipf: the skews, one workload each.
    #[arg(long, value_delimiter = ',', default_value = "0.6,0.8,0.99,1.2")]
    zipf_skews: Vec<f64>,

    /// zipf: distinct keys.
    #[arg(long, default_value_t = 100_000)]
    zipf_keys: u64,

    /// loop: the loop's length over the capacity (keys 0..ceil(factor x capacity), repeated).
    #[arg(long, default_value_t = 1.5)]
    loop_factor: f64,

    /// scan: the Zipf skew between scans.
    #[arg(long, default_value_t = 0.99)]
    scan_skew: f64,

    /// scan: the Zipf keys.
    #[arg(long, default_value_t = 100_000)]
    scan_keys: u64,

    /// scan: the share of requests in scans of never-repeated keys.
    #[arg(long, default_value_t = 0.2)]
    scan_fraction: f64,

    /// scan: keys per scan burst.
    #[arg(long, default_value_t = 1_000)]
    scan_burst: u64,

    /// shift: the Zipf skew over the window.
    #[arg(long, default_value_t = 0.99)]
    shift_skew: f64,

    /// shift: the window's keys.
    #[arg(long, default_value_t = 20_000)]
    shift_window: u64,

    /// shift: requests between two moves of the window.
    #[arg(long, default_value_t = 100_000)]
    shift_every: u64,

    /// shift: how far the window moves each time.
    #[arg(long, default_value_t = 10_000)]
    shift_jump: u64,

    /// recency: the share of requests that re-reference a key by its
    /// LRU-stack distance.
    #[arg(long, default_value_t = 0.8)]
    recency_reuse: f64,

    /// recency: the mean of the (geometric) stack distance.
    #[arg(long, default_value_t = 3_000.0)]
    recency_mean: f64,

    /// recency: of the other requests, the share for new keys (the rest
    /// pick an old key uniformly).
    #[arg(long, default_value_t = 0.5)]
    recency_fresh: f64,

    /// moka: run its pending maintenance (admission, eviction) after every
    /// N inserts; 0 leaves it to moka's own triggers (64 buffered
    /// operations or 300 ms), which let it hold up to 64 entries over its
    /// capacity.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MOKA_MAINTENANCE)]
    moka_maintenance: u64,
}

/// A synthetic workload shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Shape {
    /// Zipf at each --zipf-skews.
    Zipf,
    /// A cyclic scan larger than the cache.
    Loop,
    /// Zipf with bursts of never-repeated keys.
    Scan,
    /// A Zipf hot set that moves.
    Shift,
    /// Re-references by LRU-stack distance.
    Recency,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    /// One key per line: a u64, or any other text, hashed (FNV-1a).
    Keys,
    /// ARC `.lis`: `start count _ _`, the `count` keys from `start`.
    Arc,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("replay: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Error> {
    // Before reading any trace: a bad size needs no file to be found.
    check_capacities(&args.capacities)?;
    let plan = plan(args)?;
    plan.check()?;
    let started = Instant::now();
    let rows = replay(&plan, |row, took| {
        let times: Vec<String> = Policy::ALL
            .iter()
            .map(|p| format!("{} {:.1}s", p.name(), took[p.index()].as_secs_f64()))
            .collect();
        eprintln!("{} @ {}: {}", row.workload, row.capacity, times.join(", "));
    })?;
    let shards: Vec<String> = plan
        .capacities
        .iter()
        .map(|&c| format!("{} at {c}", quick_cache_shards(c)))
        .collect();
    println!(
        "Hit ratio, % of requests: {} requests per synthetic workload, seed {}, each cache \
         replayed alone on one thread. Bold: the best of moka, quick_cache and LRU on the row. \
         OPT is Belady's optimal with bypass (the ceiling).\n",
        plan.requests, plan.seed
    );
    print!("{}", render(&rows));
    println!(
        "\nmoka's pending tasks run after every {} insert(s){}; quick_cache shards: {}.",
        plan.tuning.moka_maintenance,
        if plan.tuning.moka_maintenance == 0 {
            " (0: only moka's own triggers)"
        } else {
            ""
        },
        shards.join(", ")
    );
    eprintln!(
        "replay: {} rows in {:.1}s",
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn plan(args: &Args) -> Result<Plan, Error> {
    let shapes = match &args.workloads {
        Some(shapes) => shapes.clone(),
        None if args.trace.is_empty() => Shape::value_variants().to_vec(),
        None => Vec::new(),
    };
    let mut inputs = Vec::new();
    for shape in shapes {
        match shape {
            Shape::Zipf => inputs.extend(args.zipf_skews.iter().map(|&skew| {
                Input::Synthetic(Workload::Zipf {
                    skew,
                    keys: args.zipf_keys,
                })
            })),
            Shape::Loop => inputs.push(Input::Synthetic(Workload::Loop {
                factor: args.loop_factor,
            })),
            Shape::Scan => inputs.push(Input::Synthetic(Workload::Scan {
                skew: args.scan_skew,
                keys: args.scan_keys,
                fraction: args.scan_fraction,
                burst: args.scan_burst,
            })),
            Shape::Shift => inputs.push(Input::Synthetic(Workload::Shift {
                skew: args.shift_skew,
                window: args.shift_window,
                every: args.shift_every,
                jump: args.shift_jump,
            })),
            Shape::Recency => inputs.push(Input::Synthetic(Workload::Recency {
                reuse: args.recency_reuse,
                mean: args.recency_mean,
                fresh: args.recency_fresh,
            })),
        }
    }
    let format = match args.format {
        FormatArg::Keys => Format::Keys,
        FormatArg::Arc => Format::Arc,
    };
    for path in &args.trace {
        let keys = read_trace(path, format)?;
        let distinct = {
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            sorted.dedup();
            sorted.len()
        };
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        inputs.push(Input::Trace {
            name: format!("trace {name} ({} keys, {distinct} distinct)", keys.len()),
            keys,
        });
    }
    Ok(Plan {
        inputs,
        capacities: args.capacities.clone(),
        requests: args.requests,
        seed: args.seed,
        tuning: Tuning {
            moka_maintenance: args.moka_maintenance,
        },
    })
}
