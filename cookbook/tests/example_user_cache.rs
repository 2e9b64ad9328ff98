//! `examples/user_cache.rs` at small size: the database runs one query per
//! user per TTL, counted by SQLite itself.

// The library's test helpers (watchdog, wait_for), shared rather than copied.
#[path = "../../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../examples/user_cache.rs"]
mod user_cache;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::{wait_for, watchdog};
use singleflight_sync::{ManualClock, TtlCache};
use user_cache::{order_cents, storm, Database, Load, UserCache, UserId};

const LIMIT: Duration = Duration::from_secs(60);
const TTL: Duration = Duration::from_secs(60);

fn database(users: i64) -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(&dir.path().join("shop.db"), users, 10, 3).unwrap();
    (dir, db)
}

fn cache(clock: &ManualClock) -> TtlCache<UserId, Option<user_cache::User>> {
    TtlCache::builder()
        .ttl(TTL)
        .clock(clock.clone())
        .build()
        .unwrap()
}

#[test]
fn one_query_per_user_per_ttl() {
    watchdog(LIMIT, || {
        let (_dir, db) = database(40);
        let clock = ManualClock::new();
        let users = UserCache::new(&db, cache(&clock));
        let load = Load {
            threads: 8,
            requests_per_thread: 200,
            users: 25,
        };

        let first = storm(&db, &load, |id| users.get(id));
        assert_eq!(first.requests, 1600);
        assert_eq!(first.queries, 25, "one query per user asked for");

        clock.advance(TTL - Duration::from_secs(1));
        let fresh = storm(&db, &load, |id| users.get(id));
        assert_eq!(fresh.queries, 0, "within the TTL every lookup is a hit");

        clock.advance(Duration::from_secs(1));
        let expired = storm(&db, &load, |id| users.get(id));
        assert_eq!(expired.queries, 25, "one query per user per TTL");
        assert_eq!(db.queries(), 50);
    });
}

#[test]
fn without_the_cache_every_lookup_is_a_query() {
    watchdog(LIMIT, || {
        let (_dir, db) = database(10);
        let load = Load {
            threads: 4,
            requests_per_thread: 25,
            users: 10,
        };
        let s = storm(&db, &load, |id| db.load_user(id).map_err(Arc::new));
        assert_eq!((s.requests, s.queries), (100, 100));
    });
}

#[test]
fn concurrent_misses_share_one_query() {
    watchdog(LIMIT, || {
        const CALLERS: usize = 8;
        let (_dir, db) = database(10);
        let clock = ManualClock::new();
        let cache = cache(&clock);
        let id = UserId(7);
        let all_here = Barrier::new(CALLERS);
        let answers: Vec<_> = thread::scope(|s| {
            let handles: Vec<_> = (0..CALLERS)
                .map(|_| {
                    s.spawn(|| {
                        all_here.wait();
                        cache.try_get_or_load(&id, || {
                            // The leader queries only once every other caller
                            // has joined its load.
                            wait_for("the other callers", || cache.waiters(&id) == CALLERS - 1);
                            db.load_user(id).map_err(Arc::new)
                        })
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(db.queries(), 1);
        let user = answers[0].clone().unwrap().unwrap();
        let spent: i64 = (0..10).map(|n| order_cents(7, n)).sum();
        assert_eq!((user.orders, user.spent_cents), (10, spent));
        for answer in answers {
            assert_eq!(answer.unwrap().unwrap(), user);
        }
        let stats = cache.stats();
        assert_eq!((stats.loads, stats.shared), (1, CALLERS as u64 - 1));
    });
}

#[test]
fn an_absent_user_is_cached_and_an_error_is_not() {
    watchdog(LIMIT, || {
        let (_dir, db) = database(5);
        let clock = ManualClock::new();
        let users = UserCache::new(&db, cache(&clock));

        assert_eq!(users.get(UserId(99)).unwrap(), None);
        assert_eq!(users.get(UserId(99)).unwrap(), None);
        assert_eq!(db.queries(), 1, "`None` is a value like any other");

        db.execute_batch("ALTER TABLE orders RENAME TO orders_gone")
            .unwrap();
        let err = users.get(UserId(1)).unwrap_err();
        assert!(err.to_string().contains("orders"), "{err}");
        assert_eq!(users.cache().get(&UserId(1)), None, "errors are not cached");

        db.execute_batch("ALTER TABLE orders_gone RENAME TO orders")
            .unwrap();
        let user = users.get(UserId(1)).unwrap().unwrap();
        assert_eq!(user.name, "User 1");
        assert_eq!(users.get(UserId(1)).unwrap().unwrap(), user);
        assert_eq!(users.cache().stats().loads, 3);
    });
}
