//! The one error type of the tool: what was wrong, where, in words a user
//! can act on.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a replay could not run.
#[derive(Debug)]
pub enum Error {
    /// A trace file could not be read ([`read_trace`](crate::read_trace)).
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A line of a trace file is not in its format
    /// ([`parse_keys`](crate::parse_keys), [`parse_arc`](crate::parse_arc)).
    Parse {
        /// The file, or `<input>` for text parsed from memory.
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting is out of its range ([`Workload::check`](crate::Workload::check),
    /// [`check_capacities`](crate::check_capacities), [`replay`](crate::replay)).
    Invalid {
        /// The flag that names the setting, e.g. `--capacities`.
        setting: &'static str,
        /// What it must be.
        reason: String,
    },
    /// A cache refused its configuration ([`replay`](crate::replay)).
    Cache(String),
}

impl Error {
    pub(crate) fn invalid(setting: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            setting,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            Error::Parse { path, line, reason } => {
                write!(f, "{}:{line}: {reason}", path.display())
            }
            Error::Invalid { setting, reason } => write!(f, "{setting}: {reason}"),
            Error::Cache(reason) => write!(f, "cache configuration refused: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
