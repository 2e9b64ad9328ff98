//! Trace files: one key per line, or the ARC `.lis` format.

use std::path::{Path, PathBuf};

use crate::error::Error;

/// The most keys a trace file may expand to: 2^28 `u64`s are 2 GiB before the
/// replay's own tables, a fair share of this tool's machine.
pub const MAX_TRACE_KEYS: usize = 1 << 28;

/// How a trace file spells its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One key per line: a `u64` is that key; any other text is hashed to one
    /// with [`key_of`] (FNV-1a, fixed, so a file names the same keys on every
    /// run and machine).
    Keys,
    /// The ARC `.lis` format of Megiddo and Modha's traces: each line is
    /// `start count _ _`, meaning the `count` consecutive blocks `start`,
    /// `start + 1`, ..., `start + count - 1`. Fields past the second are
    /// ignored.
    Arc,
}

/// The key a non-numeric line of a [`Format::Keys`] file stands for: 64-bit
/// FNV-1a of its bytes (after trimming).
///
/// ```
/// assert_eq!(singleflight_replay::key_of("user:42"), singleflight_replay::key_of("user:42"));
/// assert_ne!(singleflight_replay::key_of("user:42"), singleflight_replay::key_of("user:43"));
/// ```
pub fn key_of(text: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    text.bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Reads and parses a trace file.
///
/// # Errors
///
/// [`Error::Io`] if it cannot be read, [`Error::Parse`] naming the first bad
/// line, [`Error::Invalid`] if it expands to more than [`MAX_TRACE_KEYS`].
pub fn read_trace(path: &Path, format: Format) -> Result<Vec<u64>, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    match format {
        Format::Keys => parse_keys(&bytes, path),
        Format::Arc => parse_arc(&bytes, path),
    }
}

/// Parses a [`Format::Keys`] trace. Blank lines and lines starting with `#`
/// are skipped; `path` only names the input in errors.
///
/// ```
/// use singleflight_replay::{key_of, parse_keys};
/// let keys = parse_keys(b"7\n# a comment\n\nuser:1\n7\n", "t".as_ref()).unwrap();
/// assert_eq!(keys, [7, key_of("user:1"), 7]);
/// ```
///
/// # Errors
///
/// [`Error::Parse`] for a line that is not UTF-8.
pub fn parse_keys(bytes: &[u8], path: &Path) -> Result<Vec<u64>, Error> {
    let mut keys = Vec::new();
    for (line_no, line) in lines(bytes, path) {
        let line = line?;
        keys.push(line.parse::<u64>().unwrap_or_else(|_| key_of(line)));
        check_len(keys.len(), path, line_no)?;
    }
    Ok(keys)
}

/// Parses a [`Format::Arc`] trace. Blank lines and lines starting with `#`
/// are skipped; `path` only names the input in errors.
///
/// ```
/// use singleflight_replay::parse_arc;
/// let keys = parse_arc(b"10 3 0 0\n5 1 0 0\n", "t".as_ref()).unwrap();
/// assert_eq!(keys, [10, 11, 12, 5]);
/// ```
///
/// # Errors
///
/// [`Error::Parse`] naming the first line that is not UTF-8, has fewer than
/// two fields, has a `start` or `count` that is not a `u64`, or runs past
/// `u64::MAX`; [`Error::Invalid`] past [`MAX_TRACE_KEYS`].
pub fn parse_arc(bytes: &[u8], path: &Path) -> Result<Vec<u64>, Error> {
    let mut keys = Vec::new();
    for (line_no, line) in lines(bytes, path) {
        let line = line?;
        let bad = |reason: String| Error::Parse {
            path: path.to_owned(),
            line: line_no,
            reason,
        };
        let mut fields = line.split_whitespace();
        let (Some(start), Some(count)) = (fields.next(), fields.next()) else {
            return Err(bad(format!(
                "`{line}` is not `start count _ _` (two numbers at least)"
            )));
        };
        let start: u64 = start
            .parse()
            .map_err(|_| bad(format!("start `{start}` is not a u64")))?;
        let count: u64 = count
            .parse()
            .map_err(|_| bad(format!("count `{count}` is not a u64")))?;
        if count == 0 {
            continue;
        }
        // Inclusive: a run may end at u64::MAX itself.
        let Some(last) = start.checked_add(count - 1) else {
            return Err(bad(format!("{start} + {count} runs past u64::MAX")));
        };
        if count > (MAX_TRACE_KEYS - keys.len()) as u64 {
            check_len(MAX_TRACE_KEYS + 1, path, line_no)?;
        }
        keys.extend(start..=last);
    }
    Ok(keys)
}

/// The non-blank, non-comment lines with their 1-based numbers, trimmed, or
/// a parse error for one that is not UTF-8.
fn lines<'a>(
    bytes: &'a [u8],
    path: &'a Path,
) -> impl Iterator<Item = (usize, Result<&'a str, Error>)> + 'a {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(move |(i, raw)| {
            let line = std::str::from_utf8(raw)
                .map(str::trim)
                .map_err(|e| Error::Parse {
                    path: path.to_owned(),
                    line: i + 1,
                    reason: format!("not UTF-8 ({e})"),
                });
            (i + 1, line)
        })
        .filter(|(_, line)| !matches!(line, Ok(l) if l.is_empty() || l.starts_with('#')))
}

fn check_len(len: usize, path: &Path, line: usize) -> Result<(), Error> {
    if len > MAX_TRACE_KEYS {
        return Err(Error::invalid(
            "--trace",
            format!(
                "{} expands to more than {MAX_TRACE_KEYS} keys by line {line}",
                PathBuf::from(path).display()
            ),
        ));
    }
    Ok(())
}
