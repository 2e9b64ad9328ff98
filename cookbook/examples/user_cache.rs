//! Cache-aside in front of a real SQLite database.
//!
//! Many threads ask for the same user profiles. The profile query is a slow
//! one (it scans every order to total what the user spent), like the queries
//! a cache is usually put in front of. With a `TtlCache` in front, concurrent
//! misses for a user share one query and the result is kept for the TTL, so
//! the database runs **one query per user per TTL**, however many threads
//! ask. The query count is SQLite's own: the run counter of the prepared
//! statement (`SQLITE_STMTSTATUS_RUN`), summed over the connection pool.
//!
//! Run: `cargo run --release -p singleflight-cookbook --example user_cache`

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension, StatementStatus};
use singleflight_sync::{Group, TtlCache};

/// A user's id: a key type of its own, so a user lookup can never share a
/// key space (or a cache entry) with any other kind of lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserId(pub i64);

/// One row of the profile query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub email: String,
    pub orders: i64,
    pub spent_cents: i64,
}

/// A database error, shared: one failed query answers every caller of its
/// flight, each with a clone of this `Arc` (the library makes it; the
/// error itself need not be `Clone`).
pub type DbError = Arc<rusqlite::Error>;

/// `orders.user_id` has no index on purpose: each profile query scans every
/// order, which is what makes it worth caching.
const PROFILE: &str = "\
    SELECT u.name, u.email, COUNT(o.id), COALESCE(SUM(o.cents), 0)
    FROM users u LEFT JOIN orders o ON o.user_id = u.id
    WHERE u.id = ?1
    GROUP BY u.id";

/// A SQLite database file and a small pool of connections to it.
pub struct Database {
    pool: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl Database {
    /// Creates the database at `path` with `users` users and
    /// `orders_per_user` orders each, and opens `connections` connections.
    pub fn create(
        path: &Path,
        users: i64,
        orders_per_user: i64,
        connections: usize,
    ) -> rusqlite::Result<Database> {
        let pool = (0..connections.max(1))
            .map(|_| Connection::open(path).map(Mutex::new))
            .collect::<rusqlite::Result<_>>()?;
        let db = Database {
            pool,
            next: AtomicUsize::new(0),
        };
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL);
             CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, cents INTEGER NOT NULL);",
        )?;
        let mut conn = db.pool[0].lock().unwrap();
        let tx = conn.transaction()?;
        {
            let mut user = tx.prepare("INSERT INTO users (id, name, email) VALUES (?1, ?2, ?3)")?;
            let mut order = tx.prepare("INSERT INTO orders (user_id, cents) VALUES (?1, ?2)")?;
            for id in 1..=users {
                user.execute(params![
                    id,
                    format!("User {id}"),
                    format!("user{id}@example.com")
                ])?;
            }
            // Interleaved by user, as real orders arrive.
            for n in 0..orders_per_user {
                for id in 1..=users {
                    order.execute(params![id, order_cents(id, n)])?;
                }
            }
        }
        tx.commit()?;
        drop(conn);
        Ok(db)
    }

    /// Runs `sql` (one or more statements) on one connection.
    pub fn execute_batch(&self, sql: &str) -> rusqlite::Result<()> {
        self.pool[0].lock().unwrap().execute_batch(sql)
    }

    /// The profile query: `None` if there is no such user.
    pub fn load_user(&self, id: UserId) -> rusqlite::Result<Option<User>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len();
        let conn = self.pool[i].lock().unwrap();
        // Cached per connection: the statement, and so its run counter, lives
        // as long as the connection.
        let mut stmt = conn.prepare_cached(PROFILE)?;
        stmt.query_row([id.0], |row| {
            Ok(User {
                id,
                name: row.get(0)?,
                email: row.get(1)?,
                orders: row.get(2)?,
                spent_cents: row.get(3)?,
            })
        })
        .optional()
    }

    /// How many times SQLite has run the profile query, on every connection.
    pub fn queries(&self) -> u64 {
        self.pool
            .iter()
            .map(|conn| {
                let conn = conn.lock().unwrap();
                let stmt = conn.prepare_cached(PROFILE).expect("the query compiles");
                stmt.get_status(StatementStatus::Run) as u64
            })
            .sum()
    }
}

/// What order `n` of user `id` cost: deterministic, so tests can check it.
pub fn order_cents(id: i64, n: i64) -> i64 {
    (id * 7919 + n * 104_729) % 10_000
}

/// The cache-aside layer: a `TtlCache` whose misses run the profile query.
pub struct UserCache<'db> {
    db: &'db Database,
    cache: TtlCache<UserId, Option<User>>,
}

impl<'db> UserCache<'db> {
    /// `cache` decides the TTL (and, in tests, the clock). An absent user is
    /// cached too (`None`), so asking for one again costs no query.
    pub fn new(db: &'db Database, cache: TtlCache<UserId, Option<User>>) -> Self {
        UserCache { db, cache }
    }

    /// The user's profile: from the cache, or from one query shared by every
    /// caller that misses at the same time. A database error reaches every
    /// caller of that query and is not cached: the next call queries again.
    pub fn get(&self, id: UserId) -> Result<Option<User>, DbError> {
        self.cache.try_get_or_load(&id, || self.db.load_user(id))
    }

    /// The cache itself, for its statistics.
    pub fn cache(&self) -> &TtlCache<UserId, Option<User>> {
        &self.cache
    }
}

/// A burst of lookups: `threads` threads, released together, each asking
/// for `requests_per_thread` users drawn from ids `1..=users`.
#[derive(Clone, Debug)]
pub struct Load {
    pub threads: usize,
    pub requests_per_thread: usize,
    pub users: i64,
}

/// What a burst cost the database.
#[derive(Clone, Debug)]
pub struct Summary {
    pub requests: usize,
    pub queries: u64,
    pub elapsed: Duration,
}

/// Runs `load` against `lookup`, checks every answer, and counts the queries
/// the database ran meanwhile.
///
/// # Panics
///
/// If a lookup fails or returns the wrong user.
pub fn storm<F>(db: &Database, load: &Load, lookup: F) -> Summary
where
    F: Fn(UserId) -> Result<Option<User>, DbError> + Sync,
{
    let before = db.queries();
    let start_line = Barrier::new(load.threads);
    let start = Instant::now();
    thread::scope(|s| {
        for t in 0..load.threads {
            let (lookup, start_line) = (&lookup, &start_line);
            s.spawn(move || {
                let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
                start_line.wait();
                for _ in 0..load.requests_per_thread {
                    let id = UserId(1 + (rng.next() % load.users as u64) as i64);
                    let user = lookup(id).expect("the query succeeds");
                    let user = user.expect("every asked-for user exists");
                    assert_eq!((user.id, user.name), (id, format!("User {}", id.0)));
                }
            });
        }
    });
    Summary {
        requests: load.threads * load.requests_per_thread,
        queries: db.queries() - before,
        elapsed: start.elapsed(),
    }
}

/// A tiny deterministic PRNG, so every run asks for the same users.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const USERS: i64 = 2_000;
    const ORDERS_PER_USER: i64 = 25;
    let dir = tempfile::tempdir()?;
    let db = Database::create(&dir.path().join("shop.db"), USERS, ORDERS_PER_USER, 4)?;
    let load = Load {
        threads: 16,
        requests_per_thread: 50,
        users: 20,
    };
    println!(
        "SQLite: {USERS} users, {} orders, 4 connections (WAL); the profile query scans all orders",
        USERS * ORDERS_PER_USER
    );
    println!(
        "{} threads x {} lookups of users 1..={}\n",
        load.threads, load.requests_per_thread, load.users
    );
    println!(
        "{:<26} {:>9} {:>12} {:>10}",
        "mode", "lookups", "SQL queries", "elapsed"
    );
    let row = |mode: &str, s: Summary| {
        println!(
            "{mode:<26} {:>9} {:>12} {:>10.2?}",
            s.requests, s.queries, s.elapsed
        );
    };

    row(
        "no cache",
        storm(&db, &load, |id| db.load_user(id).map_err(Arc::new)),
    );

    // A group alone shares a query among callers that miss *together*, and
    // remembers nothing: a later caller queries again.
    let group: Group<UserId, Result<Option<User>, DbError>> = Group::new();
    row(
        "Group::work",
        storm(&db, &load, |id| group.try_work(&id, || db.load_user(id))),
    );

    let users = UserCache::new(&db, TtlCache::new(Duration::from_secs(60)));
    row("TtlCache (TTL 60 s)", storm(&db, &load, |id| users.get(id)));
    row(
        "TtlCache, again (all hits)",
        storm(&db, &load, |id| users.get(id)),
    );

    let stats = users.cache().stats();
    println!(
        "\nTtlCache: {} hits, {} misses, {} loads; {} misses joined another's load",
        stats.hits, stats.misses, stats.loads, stats.shared
    );
    Ok(())
}
