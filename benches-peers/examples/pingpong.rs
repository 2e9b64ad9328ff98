//! The floor under issue 14's two-thread figures: what one cache-line
//! transfer between two cores costs on this machine.
//!
//! `cargo run --release -p singleflight-benches-peers --example pingpong
//! [ROUND_TRIPS [RUNS]]` (default 2,000,000 round trips, 7 runs). Two
//! threads, pinned to two different cores on Linux, bounce one `AtomicU64`
//! on a cache line of its own: each spins until the line holds the other's
//! last value, then writes its own. Every write needs the line back from the
//! other core, so a round trip is two one-way transfers; the program prints
//! ns per one-way transfer for each run and their median. A singleflight
//! call on a shard the other core wrote last pays at least one such
//! transfer for each line it touches.

use std::hint;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// One line to itself, so nothing else shares its transfers.
#[repr(align(128))]
struct Line(AtomicU64);

fn main() {
    let mut args = std::env::args().skip(1).map(|a| {
        a.replace('_', "")
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("usage: pingpong [ROUND_TRIPS [RUNS]], not {a:?}"))
    });
    let round_trips = args.next().unwrap_or(2_000_000).max(1);
    let runs = args.next().unwrap_or(7).max(1);
    let cpus = pin::two_cpus();
    match cpus {
        Some((a, b)) => println!("pingpong: threads pinned to CPUs {a} and {b}"),
        None => println!("pingpong: threads not pinned (left to the scheduler)"),
    }

    let mut one_way: Vec<f64> = (0..runs)
        .map(|run| {
            let took = bounce(round_trips, cpus);
            let ns = took.as_nanos() as f64 / (2 * round_trips) as f64;
            println!(
                "run {}: {round_trips} round trips in {took:.1?}: {ns:.1} ns per one-way transfer",
                run + 1
            );
            ns
        })
        .collect();
    one_way.sort_by(f64::total_cmp);
    println!(
        "median of {runs} runs: {:.1} ns per one-way transfer ({:.1} ns a round trip); \
         min {:.1}, max {:.1}",
        one_way[one_way.len() / 2],
        2.0 * one_way[one_way.len() / 2],
        one_way[0],
        one_way[one_way.len() - 1],
    );
}

/// `round_trips` round trips, by two threads spawned for this run; the
/// time, on the side that starts, from both being ready to the last write
/// being seen.
fn bounce(round_trips: u64, cpus: Option<(usize, usize)>) -> Duration {
    let line = Arc::new(Line(AtomicU64::new(0)));
    let ready = Arc::new(Barrier::new(2));
    let side = |cpu: Option<usize>, odd: bool| {
        let (line, ready) = (Arc::clone(&line), Arc::clone(&ready));
        thread::spawn(move || {
            if let Some(cpu) = cpu {
                pin::to(cpu);
            }
            ready.wait();
            let began = Instant::now();
            // The starting side writes the odd values and waits for the
            // even ones; the other the reverse.
            for i in 0..round_trips {
                if odd {
                    line.0.store(2 * i + 1, Ordering::Release);
                    wait_for(&line.0, 2 * i + 2);
                } else {
                    wait_for(&line.0, 2 * i + 1);
                    line.0.store(2 * i + 2, Ordering::Release);
                }
            }
            began.elapsed()
        })
    };
    let other = side(cpus.map(|c| c.1), false);
    let starter = side(cpus.map(|c| c.0), true);
    let took = starter.join().expect("the starting side panicked");
    other.join().expect("the other side panicked");
    took
}

fn wait_for(word: &AtomicU64, value: u64) {
    while word.load(Ordering::Acquire) != value {
        hint::spin_loop();
    }
}

#[cfg(target_os = "linux")]
mod pin {
    use std::mem;

    fn allowed() -> Vec<usize> {
        // SAFETY: a zeroed `cpu_set_t` is a valid empty set, and the call
        // writes at most `size_of::<cpu_set_t>()` bytes into it.
        unsafe {
            let mut set: libc::cpu_set_t = mem::zeroed();
            if libc::sched_getaffinity(0, mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return Vec::new();
            }
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
                .collect()
        }
    }

    /// The first two CPUs this process may run on, if it may run on two.
    pub fn two_cpus() -> Option<(usize, usize)> {
        match allowed()[..] {
            [a, b, ..] => Some((a, b)),
            _ => None,
        }
    }

    /// Pins the calling thread to `cpu`.
    pub fn to(cpu: usize) {
        // SAFETY: as in `allowed`; `CPU_SET` writes inside the set, and
        // `cpu` came from `allowed`, below `CPU_SETSIZE`.
        let ok = unsafe {
            let mut set: libc::cpu_set_t = mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set) == 0
        };
        assert!(ok, "sched_setaffinity(CPU {cpu}) failed");
    }
}

#[cfg(not(target_os = "linux"))]
mod pin {
    pub fn two_cpus() -> Option<(usize, usize)> {
        None
    }
    pub fn to(_: usize) {}
}
