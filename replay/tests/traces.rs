//! The trace parsers: what each format expands to, and a clear error naming
//! the line for what it cannot read.

use std::path::Path;

use singleflight_replay::{key_of, parse_arc, parse_keys, read_trace, Error, Format};

fn at(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn input() -> &'static Path {
    Path::new("<input>")
}

#[test]
fn lis_lines_expand_to_consecutive_blocks() {
    let keys = parse_arc(b"10 3 0 0\n5 1 0 1\n7 0 0 2\n  40   2  \n10 2 0 0", input()).unwrap();
    assert_eq!(keys, [10, 11, 12, 5, 40, 41, 10, 11]);
    // Windows line ends, comments and blank lines.
    let keys = parse_arc(b"# header\r\n\r\n3 2 0 0\r\n", input()).unwrap();
    assert_eq!(keys, [3, 4]);
    // A run that ends exactly at u64::MAX is fine.
    let top = format!("{} 2 0 0", u64::MAX - 1);
    assert_eq!(
        parse_arc(top.as_bytes(), input()).unwrap(),
        [u64::MAX - 1, u64::MAX]
    );
}

#[test]
fn the_shipped_lis_trace_expands_fully() {
    // 300 lines whose counts add up to 1,342 and whose blocks to
    // 46,792,130,349 (computed by the script that wrote the file).
    let keys = read_trace(&at("small.lis"), Format::Arc).unwrap();
    assert_eq!(keys.len(), 1_342);
    assert_eq!(keys.iter().sum::<u64>(), 46_792_130_349);
    // Its first line is `5044 7 0 0`, its second `0 2 0 1`.
    assert_eq!(keys[..9], [5044, 5045, 5046, 5047, 5048, 5049, 5050, 0, 1]);
}

#[test]
fn keys_lines_are_numbers_or_hashed_text() {
    let keys = parse_keys(
        b"42\n user:7 \n# not a key\n\n42\nuser:7\nuser:8\n-1\n",
        input(),
    )
    .unwrap();
    assert_eq!(
        keys,
        [
            42,
            key_of("user:7"),
            42,
            key_of("user:7"),
            key_of("user:8"),
            key_of("-1")
        ]
    );
    assert_ne!(key_of("user:7"), key_of("user:8"));
    // FNV-1a, fixed: the same on every run and machine.
    assert_eq!(key_of(""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(key_of("a"), 0xaf63_dc4c_8601_ec8c);
}

#[test]
fn the_shipped_keys_trace_reads_fully() {
    let keys = read_trace(&at("small.keys"), Format::Keys).unwrap();
    assert_eq!(keys.len(), 400);
    let mut distinct = keys.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 90);
    assert_eq!(keys[..3], [23, 39, 1]);
}

fn parse_error(result: Result<Vec<u64>, Error>) -> (usize, String) {
    match result {
        Err(Error::Parse { line, reason, .. }) => (line, reason),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn a_bad_lis_line_is_named() {
    let (line, reason) = parse_error(parse_arc(b"1 2 0 0\n\nx 2 0 0\n", input()));
    assert_eq!(line, 3);
    assert!(reason.contains("start `x`"), "{reason}");
    let (line, reason) = parse_error(parse_arc(b"1 -2 0 0\n", input()));
    assert_eq!(line, 1);
    assert!(reason.contains("count `-2`"), "{reason}");
    let (line, reason) = parse_error(parse_arc(b"# c\n17\n", input()));
    assert_eq!(line, 2);
    assert!(reason.contains("two numbers"), "{reason}");
    let past = format!("{} 3 0 0", u64::MAX - 1);
    let (_, reason) = parse_error(parse_arc(past.as_bytes(), input()));
    assert!(reason.contains("past u64::MAX"), "{reason}");
}

#[test]
fn a_line_that_is_not_utf8_is_named() {
    let (line, reason) = parse_error(parse_keys(b"1\n2\n\xff\xfe\n", input()));
    assert_eq!(line, 3);
    assert!(reason.contains("UTF-8"), "{reason}");
}

#[test]
fn a_missing_file_is_named() {
    let err = read_trace(&at("no-such-file.lis"), Format::Arc).unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().contains("no-such-file.lis"), "{err}");
}

#[test]
fn a_huge_count_is_refused_before_it_is_allocated() {
    let err = parse_arc(b"0 18446744073709551615 0 0\n", input()).unwrap_err();
    assert!(err.to_string().contains("more than"), "{err}");
}
