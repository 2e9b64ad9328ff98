//! The group's way to Redis: a small pool of blocking connections, each
//! operation under the operation timeout, a breaker that counts Redis as
//! down for a while after a failure, and the three scripts of the protocol.

use std::time::{Duration, Instant};

use redis::{Connection, RedisError, RedisResult, Script, Value};

use super::record::Names;
use super::stats::{bump, Counters};
use crate::sync::{AtomicU64, Mutex, Ordering};

/// Reads the result, or wins the lease, or reports the lease's time left,
/// in one step. The record's size is checked before it is sent, so a huge
/// value planted in the result key is never transferred. A record is never
/// empty, so `STRLEN` 0 means "no result".
/// KEYS: result, lease. ARGV: token, lease ms, max record bytes.
const JOIN: &str = r"
local n = redis.call('STRLEN', KEYS[1])
if n > 0 then
  if n > tonumber(ARGV[3]) then return {2, n} end
  return {1, redis.call('GET', KEYS[1])}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {3} end
return {4, redis.call('PTTL', KEYS[2])}
";

/// Extends the lease only while it still holds this leader's token.
/// KEYS: lease. ARGV: token, lease ms.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Stores the record (unless its time to live is 0), deletes the lease if
/// it is still this leader's, and tells every process, atomically.
/// KEYS: result, lease. ARGV: token, record, ttl ms, channel, key.
const COMPLETE: &str = r"
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
local mine = 0
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  mine = 1
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return mine
";

/// What a [`JOIN`] found.
#[derive(Debug)]
pub(crate) enum Joined {
    /// The result record's bytes.
    Record(Vec<u8>),
    /// A result record over the size limit, with its size.
    TooLarge(u64),
    /// This caller won the lease.
    Leader,
    /// Another leader holds the lease for this long (`None`: no expiry, or
    /// it vanished between the two reads).
    Wait(Option<Duration>),
}

pub(crate) struct Link {
    pub(crate) client: redis::Client,
    pool: Mutex<Vec<Connection>>,
    pub(crate) op_timeout: Duration,
    retry_after: Duration,
    epoch: Instant,
    /// Nanoseconds after `epoch` until which Redis counts as down.
    down_until: AtomicU64,
    pub(crate) names: Names,
    pub(crate) counters: Counters,
    join: Script,
    renew: Script,
    complete: Script,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("op_timeout", &self.op_timeout)
            .field("retry_after", &self.retry_after)
            .field("down", &self.is_down())
            .finish_non_exhaustive()
    }
}

/// The connection itself is broken (or its reply may still arrive): drop it
/// and count Redis as down. A server error reply leaves it usable.
fn breaks_connection(e: &RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
}

impl Link {
    pub(crate) fn new(
        client: redis::Client,
        names: Names,
        op_timeout: Duration,
        retry_after: Duration,
    ) -> Self {
        Link {
            client,
            pool: Mutex::new(Vec::new()),
            op_timeout,
            retry_after,
            epoch: Instant::now(),
            down_until: AtomicU64::new(0),
            names,
            counters: Counters::default(),
            join: Script::new(JOIN),
            renew: Script::new(RENEW),
            complete: Script::new(COMPLETE),
        }
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether a recent failure makes the group skip Redis for now.
    pub(crate) fn is_down(&self) -> bool {
        self.now_nanos() < self.down_until.load(Ordering::Relaxed)
    }

    pub(crate) fn mark_down(&self) {
        let until = self
            .now_nanos()
            .saturating_add(self.retry_after.as_nanos() as u64);
        self.down_until.fetch_max(until, Ordering::Relaxed);
    }

    /// A fresh connection with the operation timeout on every read and write.
    pub(crate) fn connect(&self) -> RedisResult<Connection> {
        let conn = self.client.get_connection_with_timeout(self.op_timeout)?;
        conn.set_read_timeout(Some(self.op_timeout))?;
        conn.set_write_timeout(Some(self.op_timeout))?;
        Ok(conn)
    }

    /// Runs `op` on a pooled connection, unless Redis counts as down. A
    /// failure is counted; one that breaks the connection marks Redis down
    /// for `retry_after`, so the calls behind it do not each wait out a
    /// timeout.
    pub(crate) fn run<T>(
        &self,
        op: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> RedisResult<T> {
        if self.is_down() {
            return Err(down());
        }
        let pooled = self.pool.lock().pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => match self.connect() {
                Ok(conn) => conn,
                Err(e) => return Err(self.failed(e)),
            },
        };
        match op(&mut conn) {
            Ok(value) => {
                self.pool.lock().push(conn);
                Ok(value)
            }
            Err(e) => {
                if !breaks_connection(&e) {
                    self.pool.lock().push(conn);
                }
                Err(self.failed(e))
            }
        }
    }

    fn failed(&self, e: RedisError) -> RedisError {
        bump(&self.counters.redis_errors);
        if breaks_connection(&e) {
            self.mark_down();
        }
        e
    }

    pub(crate) fn join(
        &self,
        key: &str,
        token: &str,
        lease: Duration,
        max_bytes: usize,
    ) -> RedisResult<Joined> {
        let value: Value = self.run(|c| {
            self.join
                .key(self.names.result(key))
                .key(self.names.lease(key))
                .arg(token)
                .arg(millis(lease))
                .arg(max_bytes)
                .invoke(c)
        })?;
        parse_joined(value)
    }

    /// Whether the lease was still this leader's and is now extended.
    pub(crate) fn renew(&self, key: &str, token: &str, lease: Duration) -> RedisResult<bool> {
        self.run(|c| {
            self.renew
                .key(self.names.lease(key))
                .arg(token)
                .arg(millis(lease))
                .invoke::<i64>(c)
        })
        .map(|n| n == 1)
    }

    /// Stores `record` for `ttl` (none when `ttl` is zero), releases the
    /// lease and publishes the key.
    pub(crate) fn complete(
        &self,
        key: &str,
        token: &str,
        record: &[u8],
        ttl: Duration,
    ) -> RedisResult<()> {
        self.run(|c| {
            self.complete
                .key(self.names.result(key))
                .key(self.names.lease(key))
                .arg(token)
                .arg(record)
                .arg(millis(ttl))
                .arg(&self.names.channel)
                .arg(key)
                .invoke::<i64>(c)
        })
        .map(drop)
    }
}

/// Milliseconds for `PX`: at least 1 when `d` is not zero.
pub(crate) fn millis(d: Duration) -> u64 {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 && !d.is_zero() {
        1
    } else {
        ms
    }
}

/// The error of an operation skipped because Redis counts as down.
pub(crate) fn down() -> RedisError {
    RedisError::from((
        redis::ErrorKind::Io,
        "redis counted as down after a recent failure (see retry_after)",
    ))
}

fn unexpected(what: &'static str) -> RedisError {
    RedisError::from((redis::ErrorKind::UnexpectedReturnType, what))
}

fn parse_joined(value: Value) -> RedisResult<Joined> {
    let Value::Array(items) = value else {
        return Err(unexpected("the join script answered with no array"));
    };
    let mut items = items.into_iter();
    let tag = match items.next() {
        Some(Value::Int(tag)) => tag,
        _ => return Err(unexpected("the join script answered with no tag")),
    };
    match (tag, items.next()) {
        (1, Some(Value::BulkString(bytes))) => Ok(Joined::Record(bytes)),
        (2, Some(Value::Int(size))) => Ok(Joined::TooLarge(size.max(0) as u64)),
        (3, None) => Ok(Joined::Leader),
        (4, Some(Value::Int(ms))) if ms > 0 => {
            Ok(Joined::Wait(Some(Duration::from_millis(ms as u64))))
        }
        (4, Some(Value::Int(_))) => Ok(Joined::Wait(None)),
        _ => Err(unexpected("the join script answered with an unknown shape")),
    }
}
