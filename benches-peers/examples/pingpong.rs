//! The floor under issue 14's two-thread figures: what one cache-line
//! transfer between two cores costs on this machine.
//!
//! `cargo run --release -p singleflight-benches-peers --example pingpong
//! [ROUND_TRIPS [RUNS]]` (default 2,000,000 round trips, 7 runs). Two
//! threads, pinned to two different cores on Linux, bounce one `AtomicU64`
//! on a cache line of its own (`benches/common/pingpong.rs`, which
//! `benches/group_scaling.rs` also runs between its rows); the program
//! prints ns per one-way transfer for each run and their median. A
//! singleflight call on a shard the other core wrote last pays at least one
//! such transfer for each line it touches.
//!
//! On a VM the figure is only as stable as the host's placement of the two
//! virtual CPUs: on the project's 2-core EPYC VM it has been seen at about
//! 34, 93 and 160 ns within minutes, so compare a two-thread figure with a
//! ping-pong taken next to it.

#[path = "../benches/common/pingpong.rs"]
mod pingpong;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| {
        a.replace('_', "")
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("usage: pingpong [ROUND_TRIPS [RUNS]], not {a:?}"))
    });
    let round_trips = args.next().unwrap_or(2_000_000).max(1);
    let runs = args.next().unwrap_or(7).max(1) as usize;
    let cpus = pingpong::two_cpus();
    match cpus {
        Some((a, b)) => println!("pingpong: threads pinned to CPUs {a} and {b}"),
        None => println!("pingpong: threads not pinned (left to the scheduler)"),
    }
    let mut one_way = pingpong::one_way_ns(round_trips, runs, cpus);
    for (run, ns) in one_way.iter().enumerate() {
        println!(
            "run {}: {round_trips} round trips: {ns:.1} ns per one-way transfer",
            run + 1
        );
    }
    let median = pingpong::median(&mut one_way);
    println!(
        "median of {runs} runs: {median:.1} ns per one-way transfer ({:.1} ns a round trip); \
         min {:.1}, max {:.1}",
        2.0 * median,
        one_way[0],
        one_way[runs - 1],
    );
}
