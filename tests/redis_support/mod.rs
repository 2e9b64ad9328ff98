//! A real `redis-server` for the fleet tests: on a Unix socket in a fresh
//! temporary folder (no port shared with anything), with persistence off,
//! killed when dropped. A missing `redis-server` fails the test with a
//! message saying how to install it; it never skips.
//!
//! The server runs under coreutils' `timeout -s KILL 600`, so even a test
//! process that aborts (a watchdog) or is killed leaves no server running
//! for more than ten minutes; its own pid is read from `INFO server`.
#![allow(dead_code)] // each test file uses its own subset

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub dir: PathBuf,
    pub socket: PathBuf,
    /// `timeout`, the server's parent.
    child: Option<Child>,
    /// The server's own pid, for signals.
    pid: u32,
    extra: Vec<String>,
}

fn spawn(dir: &std::path::Path, socket: &std::path::Path, extra: &[String]) -> Child {
    if Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        panic!(
            "`redis-server` is not installed: the fleet tests need a real one. Install it with \
             `apt-get install -y redis-server` (.ci/run does so when it is missing)"
        );
    }
    Command::new("timeout")
        .args(["-s", "KILL", "600", "redis-server"])
        .arg("--port")
        .arg("0")
        .arg("--unixsocket")
        .arg(socket)
        .arg("--unixsocketperm")
        .arg("700")
        .arg("--save")
        .arg("")
        .arg("--appendonly")
        .arg("no")
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `timeout redis-server`: {e}"))
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// With more `redis-server` arguments (e.g. ACL users).
    pub fn start_with(extra: &[&str]) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sf-redis-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("redis.sock");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = spawn(&dir, &socket, &extra);
        let mut server = RedisServer {
            dir,
            socket,
            child: Some(child),
            pid: 0,
            extra,
        };
        server.wait_ready();
        server
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    pub fn pid(&self) -> u32 {
        assert!(
            self.child.is_some() && self.pid != 0,
            "redis is not running"
        );
        self.pid
    }

    /// The URL with the admin user's credentials, when the server was
    /// started with ACL users (see `tests/redis_records.rs`).
    fn admin_url(&self) -> String {
        if self.extra.iter().any(|a| a == "--user") {
            format!("{}?user=admin&pass=admin-pw", self.url())
        } else {
            self.url()
        }
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            let info = self
                .try_conn()
                .and_then(|mut c| redis::cmd("INFO").arg("server").query::<String>(&mut c));
            match info {
                Ok(info) => {
                    let pid = info
                        .lines()
                        .find_map(|l| l.strip_prefix("process_id:"))
                        .and_then(|p| p.trim().parse().ok());
                    self.pid = pid.expect("INFO server names the process_id");
                    return;
                }
                Err(e) => assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "redis-server did not answer on {} within 10 s ({e}; see {}/redis.log)",
                    self.socket.display(),
                    self.dir.display()
                ),
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn try_conn(&self) -> redis::RedisResult<redis::Connection> {
        let c = redis::Client::open(self.admin_url())?
            .get_connection_with_timeout(Duration::from_secs(2))?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(c)
    }

    /// A plain connection for the test's own reads and writes.
    pub fn conn(&self) -> redis::Connection {
        self.try_conn().expect("connect to the test redis")
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(sig)
            .arg(self.pid().to_string())
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {sig} redis-server");
    }

    /// SIGSTOP: Redis accepts connections (the kernel does) but answers
    /// nothing, like a server stuck in a long command or a paused VM.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Kills Redis (its data is gone: no persistence).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.pid != 0 {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(self.pid.to_string())
                    .status();
            } else {
                // Never ready, so its pid is unknown: `timeout` passes
                // SIGTERM on to it. (`kill 0` would signal our own group.)
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(child.id().to_string())
                    .status();
            }
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Starts a new, empty Redis on the same socket.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Some(spawn(&self.dir, &self.socket, &self.extra));
        self.wait_ready();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            // SIGKILL ends a paused server too; resume it anyway, so that
            // nothing is left stopped if the kill were refused.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(self.pid.to_string())
                .status();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The number of runs counted under `key` (a plain Redis counter the
/// tests' `f`s `INCR`), 0 when absent.
pub fn count(conn: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("GET")
        .arg(key)
        .query::<Option<i64>>(conn)
        .expect("read a counter")
        .unwrap_or(0)
}

pub fn incr(conn: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("INCR")
        .arg(key)
        .query(conn)
        .expect("INCR a counter")
}

/// Aborts the whole test process if it is still running after `limit`:
/// for tests whose hang would be in child processes or signals, where a
/// panic on a side thread would not stop the test.
pub fn abort_after(limit: Duration, what: &'static str) {
    thread::spawn(move || {
        thread::sleep(limit);
        eprintln!("watchdog: {what} not finished after {limit:?}: aborting");
        std::process::abort();
    });
}
