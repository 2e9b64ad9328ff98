//! One cache line bounced between two cores: the floor under a two-thread
//! figure, for `examples/pingpong.rs` and `benches/group_scaling.rs`.
//!
//! Two threads, pinned to two different cores on Linux, bounce one
//! `AtomicU64` on a cache line of its own: each spins until the line holds
//! the other's last value, then writes its own. Every write needs the line
//! back from the other core, so a round trip is two one-way transfers.

use std::hint;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// One line to itself, so nothing else shares its transfers.
#[repr(align(128))]
struct Line(AtomicU64);

/// The first two CPUs this process may run on, if it may run on two (and
/// the platform lets a thread be pinned).
pub fn two_cpus() -> Option<(usize, usize)> {
    pin::two_cpus()
}

/// `runs` runs of `round_trips` round trips each: ns per one-way transfer
/// in each run, in run order.
pub fn one_way_ns(round_trips: u64, runs: usize, cpus: Option<(usize, usize)>) -> Vec<f64> {
    (0..runs)
        .map(|_| bounce(round_trips, cpus).as_nanos() as f64 / (2 * round_trips) as f64)
        .collect()
}

/// The median of `ns` (sorted in place).
pub fn median(ns: &mut [f64]) -> f64 {
    ns.sort_by(f64::total_cmp);
    ns[ns.len() / 2]
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
