//! The `replay` binary end to end: a table on the shipped traces, and a
//! clear error with a non-zero exit (never a panic) on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn replay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_replay"))
        .args(args)
        .output()
        .expect("the replay binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A file under the target dir's temp area, unique to this test.
fn scratch(name: &str, contents: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("replay-cli");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// Runs and expects a failure whose stderr holds `needle`, with no panic.
fn fails_with(args: &[&str], needle: &str) {
    let out = replay(args);
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "{args:?} succeeded: {}",
        text(&out.stdout)
    );
    assert!(
        err.contains(needle),
        "{args:?}: stderr lacks {needle:?}: {err}"
    );
    assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    assert!(
        out.stdout.is_empty(),
        "{args:?} printed a table: {}",
        text(&out.stdout)
    );
}

#[test]
fn both_trace_formats_make_a_table() {
    let keys = data("small.keys");
    let lis = data("small.lis");
    let out = replay(&["--capacities", "4,16", "--trace", keys.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("| workload | capacity | TtlCache | moka | quick_cache | LRU | OPT | ours - best peer |"), "{table}");
    assert!(
        table.contains("| trace small.keys (400 keys, 90 distinct) | 4 |"),
        "{table}"
    );
    assert!(
        table.contains("| trace small.keys (400 keys, 90 distinct) | 16 |"),
        "{table}"
    );
    assert!(
        table.contains("TtlCache >= the best of moka, quick_cache and LRU on "),
        "{table}"
    );
    assert!(table.contains(" of 2 rows."), "{table}");

    let out = replay(&[
        "--capacities",
        "50",
        "--format",
        "arc",
        "--trace",
        lis.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("| trace small.lis (1342 keys, "), "{table}");
    assert!(table.contains(" of 1 rows."), "{table}");
}

#[test]
fn a_small_synthetic_run_has_one_row_per_workload_and_capacity() {
    let out = replay(&[
        "--requests",
        "20000",
        "--capacities",
        "100,400",
        "--zipf-keys",
        "5000",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let rows = table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| workload"))
        .count();
    // Four Zipf skews, loop, scan, shift, recency; two capacities each.
    assert_eq!(rows, 16, "{table}");
    assert!(
        table.contains("| zipf s=0.99, 5000 keys | 400 |"),
        "{table}"
    );
    assert!(
        table.contains("| loop of 150 keys (1.5 x capacity) | 100 |"),
        "{table}"
    );
    assert!(
        table.contains("| loop of 600 keys (1.5 x capacity) | 400 |"),
        "{table}"
    );
    assert!(table.contains(" of 16 rows."), "{table}");
}

#[test]
fn the_same_seed_prints_the_same_table() {
    let args = [
        "--requests",
        "20000",
        "--capacities",
        "64",
        "--workloads",
        "zipf,scan,recency",
    ];
    let a = replay(&args);
    let b = replay(&args);
    assert!(a.status.success(), "{}", text(&a.stderr));
    assert_eq!(text(&a.stdout), text(&b.stdout));
}

#[test]
fn help_says_single_threaded_and_lists_the_flags() {
    let out = replay(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in [
        "single-threaded",
        "--trace",
        "--format",
        "--capacities",
        "--seed",
        "--requests",
        "--zipf-skews",
        "--recency-mean",
        "--moka-maintenance",
    ] {
        assert!(help.contains(needle), "help lacks {needle}: {help}");
    }
    assert!(!help.contains("--threads"));
}

#[test]
fn an_unparseable_lis_line_is_an_error() {
    let bad = scratch("bad.lis", b"0 4 0 0\n1 2 0 0\n8 many 0 0\n");
    fails_with(
        &["--format", "arc", "--trace", bad.to_str().unwrap()],
        "bad.lis:3: count `many` is not a u64",
    );
}

#[test]
fn a_keys_line_that_is_not_utf8_is_an_error() {
    let bad = scratch("bad.keys", b"1\n2\n\xc3\x28\n");
    fails_with(&["--trace", bad.to_str().unwrap()], "bad.keys:3: not UTF-8");
}

#[test]
fn zero_capacity_is_an_error() {
    fails_with(&["--capacities", "0"], "--capacities: 0 is outside 1..=");
    fails_with(
        &["--capacities", "10,0", "--trace", "no-such-file"],
        "--capacities",
    );
}

#[test]
fn out_of_range_settings_are_errors() {
    fails_with(
        &["--scan-fraction", "1.0"],
        "--scan-fraction: 1 is outside 0.0..1.0",
    );
    fails_with(&["--loop-factor", "0.5"], "--loop-factor");
    fails_with(&["--requests", "0"], "--requests: must be at least 1");
    fails_with(&["--zipf-keys", "0"], "--zipf-keys");
    fails_with(&["--recency-mean", "0.5"], "--recency-mean");
    // clap's own refusals exit non-zero too.
    fails_with(&["--capacities", "ten"], "invalid value 'ten'");
    fails_with(&["--format", "csv", "--trace", "x"], "invalid value 'csv'");
}

#[test]
fn a_missing_or_empty_trace_is_an_error() {
    fails_with(
        &["--trace", "/nonexistent/trace.keys"],
        "cannot read /nonexistent/trace.keys",
    );
    let empty = scratch("empty.keys", b"# nothing but a comment\n\n");
    fails_with(&["--trace", empty.to_str().unwrap()], "holds no keys");
}
