//! Batch loading in front of a real SQLite database: the N+1 pattern.
//!
//! A page shows 20 users (the people in a discussion thread) out of 10,000;
//! many threads render pages at once, and the same active users appear on
//! many of them. Loading each user with its own query costs 20 queries a
//! page; one `WHERE id IN (..)` query a page costs one, but repeats the users
//! other pages are loading at that very moment or loaded a moment ago.
//! `TtlCache::try_get_or_load_many` serves cached users at once, joins the
//! loads already running for others, and sends **one** query for the rest:
//! every user is read once, in about one query per page.
//!
//! The query counts are SQLite's own: the run counter of each prepared
//! statement (`SQLITE_STMTSTATUS_RUN`), summed over the connection pool.
//! Rows read are counted as the loaders read them.
//!
//! Run: `cargo run --release -p singleflight-cookbook --example user_pages`

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension, StatementStatus};
use singleflight_sync::{Group, TtlCache};

/// A user's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserId(pub i64);

/// One row of `users`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub name: String,
    pub email: String,
}

/// A database error, shared by every caller of the load that failed.
pub type DbError = Arc<rusqlite::Error>;

const ONE: &str = "SELECT id, name, email FROM users WHERE id = ?1";
/// One statement for any number of ids: they travel as one JSON array, so
/// SQLite prepares (and counts) one statement, whatever the batch's size.
const MANY: &str =
    "SELECT id, name, email FROM users WHERE id IN (SELECT value FROM json_each(?1))";

/// A SQLite database file, a small pool of connections, and a count of the
/// rows the loaders read.
pub struct Database {
    pool: Vec<Mutex<Connection>>,
    next: AtomicUsize,
    rows: AtomicU64,
}

impl Database {
    /// Creates the database at `path` with `users` users and opens
    /// `connections` connections.
    pub fn create(path: &Path, users: i64, connections: usize) -> rusqlite::Result<Database> {
        let pool = (0..connections.max(1))
            .map(|_| Connection::open(path).map(Mutex::new))
            .collect::<rusqlite::Result<_>>()?;
        let db = Database {
            pool,
            next: AtomicUsize::new(0),
            rows: AtomicU64::new(0),
        };
        let mut conn = db.pool[0].lock().unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL);",
        )?;
        let tx = conn.transaction()?;
        {
            let mut insert =
                tx.prepare("INSERT INTO users (id, name, email) VALUES (?1, ?2, ?3)")?;
            for id in 1..=users {
                insert.execute(params![id, name_of(id), format!("user{id}@example.com")])?;
            }
        }
        tx.commit()?;
        drop(conn);
        Ok(db)
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len();
        self.pool[i].lock().unwrap()
    }

    fn user(&self, row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
        self.rows.fetch_add(1, Ordering::Relaxed);
        Ok(User {
            id: UserId(row.get(0)?),
            name: row.get(1)?,
            email: row.get(2)?,
        })
    }

    /// One user, one query.
    pub fn load_user(&self, id: UserId) -> rusqlite::Result<Option<User>> {
        let conn = self.connection();
        let mut stmt = conn.prepare_cached(ONE)?;
        stmt.query_row([id.0], |row| self.user(row)).optional()
    }

    /// Many users, one query; ids with no user are simply not in the answer.
    pub fn load_users(&self, ids: &[&UserId]) -> rusqlite::Result<Vec<(UserId, User)>> {
        let list = ids
            .iter()
            .map(|id| id.0.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let conn = self.connection();
        let mut stmt = conn.prepare_cached(MANY)?;
        let users = stmt.query_map([format!("[{list}]")], |row| self.user(row))?;
        users.map(|user| user.map(|u| (u.id, u))).collect()
    }

    /// Statements SQLite has run so far (both queries, every connection).
    pub fn queries(&self) -> u64 {
        self.pool
            .iter()
            .map(|conn| {
                let conn = conn.lock().unwrap();
                [ONE, MANY]
                    .iter()
                    .map(|sql| {
                        let stmt = conn.prepare_cached(sql).expect("the query compiles");
                        stmt.get_status(StatementStatus::Run) as u64
                    })
                    .sum::<u64>()
            })
            .sum()
    }

    /// Rows the loaders have read so far.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }
}

/// User `id`'s name: deterministic, so every page can be checked.
pub fn name_of(id: i64) -> String {
    format!("User {id}")
}

/// The pages to render: `threads` threads, released together, each
/// rendering `pages_per_thread` pages of `per_page` distinct users out of
/// `1..=users`. Most people on a page are among the `active` most active
/// users (80%), the rest anyone.
#[derive(Clone, Debug)]
pub struct Load {
    pub threads: usize,
    pub pages_per_thread: usize,
    pub per_page: usize,
    pub users: i64,
    pub active: i64,
}

impl Load {
    /// Page `p` of thread `t`: the ids it shows.
    pub fn page(&self, t: usize, p: usize) -> Vec<UserId> {
        let mut rng = XorShift((t as u64 + 1) << 32 ^ (p as u64 + 1) ^ 0x9E37_79B9_7F4A_7C15);
        let mut ids = Vec::with_capacity(self.per_page);
        while ids.len() < self.per_page {
            let r = rng.next();
            let range = if r % 10 < 8 { self.active } else { self.users };
            let id = UserId(1 + ((r >> 8) % range as u64) as i64);
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    /// How many distinct users the whole run shows.
    pub fn distinct_users(&self) -> usize {
        let mut all = HashSet::new();
        for t in 0..self.threads {
            for p in 0..self.pages_per_thread {
                all.extend(self.page(t, p));
            }
        }
        all.len()
    }

    pub fn pages(&self) -> usize {
        self.threads * self.pages_per_thread
    }
}

/// What rendering the pages cost the database.
#[derive(Clone, Debug)]
pub struct Summary {
    pub pages: usize,
    pub queries: u64,
    pub rows: u64,
    pub elapsed: Duration,
}

/// Renders every page of `load` with `render` (which returns the page's
/// users, in order), checks every user of every page, and counts what the
/// database did meanwhile.
///
/// # Panics
///
/// If a page fails, or shows a missing or wrong user.
pub fn render_pages<F>(db: &Database, load: &Load, render: F) -> Summary
where
    F: Fn(&[UserId]) -> Result<Vec<Option<User>>, DbError> + Sync,
{
    let (queries, rows) = (db.queries(), db.rows());
    let start_line = Barrier::new(load.threads);
    let start = Instant::now();
    thread::scope(|s| {
        for t in 0..load.threads {
            let (render, start_line) = (&render, &start_line);
            s.spawn(move || {
                start_line.wait();
                for p in 0..load.pages_per_thread {
                    let ids = load.page(t, p);
                    let users = render(&ids).expect("the queries succeed");
                    assert_eq!(users.len(), load.per_page, "page {t}/{p}");
                    for (id, user) in ids.iter().zip(users) {
                        let user =
                            user.unwrap_or_else(|| panic!("page {t}/{p}: user {} missing", id.0));
                        assert_eq!((user.id, user.name), (*id, name_of(id.0)));
                    }
                }
            });
        }
    });
    Summary {
        pages: load.pages(),
        queries: db.queries() - queries,
        rows: db.rows() - rows,
        elapsed: start.elapsed(),
    }
}

/// Every way of loading a page's users that `main` compares, by name.
pub fn modes(db: &Database, load: &Load) -> Vec<(&'static str, Summary)> {
    let mut out = Vec::new();
    out.push((
        "per-key, no cache",
        render_pages(db, load, |ids| {
            ids.iter()
                .map(|&id| db.load_user(id).map_err(Arc::new))
                .collect()
        }),
    ));
    out.push((
        "batch per page, no cache",
        render_pages(db, load, |ids| {
            let mut found = db
                .load_users(&ids.iter().collect::<Vec<_>>())
                .map_err(Arc::new)?;
            Ok(ids
                .iter()
                .map(|id| {
                    found
                        .iter()
                        .position(|(k, _)| k == id)
                        .map(|i| found.swap_remove(i).1)
                })
                .collect())
        }),
    ));
    // Coalesced but not remembered: only pages loading at the same moment
    // share their users.
    let group: Group<UserId, Result<User, DbError>> = Group::new();
    out.push((
        "Group::try_work_many",
        render_pages(db, load, |ids| {
            group.try_work_many(ids, |ids| db.load_users(ids))
        }),
    ));
    // An absent user is cached too (`None`): the per-key way to remember one.
    let cache: TtlCache<UserId, Option<User>> = TtlCache::new(Duration::from_secs(60));
    out.push((
        "TtlCache, per-key",
        render_pages(db, load, |ids| {
            ids.iter()
                .map(|id| cache.try_get_or_load(id, || db.load_user(*id)))
                .collect()
        }),
    ));
    let cache: TtlCache<UserId, User> = TtlCache::new(Duration::from_secs(60));
    out.push((
        "TtlCache, get_or_load_many",
        render_pages(db, load, |ids| {
            cache.try_get_or_load_many(ids, |ids| db.load_users(ids))
        }),
    ));
    out
}

/// A tiny deterministic PRNG, so every run shows the same pages.
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
    let dir = tempfile::tempdir()?;
    let load = Load {
        threads: 16,
        pages_per_thread: 25,
        per_page: 20,
        users: 10_000,
        active: 300,
    };
    let db = Database::create(&dir.path().join("users.db"), load.users, 4)?;
    println!(
        "SQLite: {} users, 4 connections (WAL). {} threads x {} pages of {} users \
         (80% among the {} most active): {} pages, {} distinct users\n",
        load.users,
        load.threads,
        load.pages_per_thread,
        load.per_page,
        load.active,
        load.pages(),
        load.distinct_users()
    );
    println!(
        "{:<28} {:>6} {:>12} {:>10} {:>10}",
        "mode", "pages", "SQL queries", "rows read", "elapsed"
    );
    for (mode, s) in modes(&db, &load) {
        println!(
            "{mode:<28} {:>6} {:>12} {:>10} {:>10.2?}",
            s.pages, s.queries, s.rows, s.elapsed
        );
    }
    Ok(())
}
