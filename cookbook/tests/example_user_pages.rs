//! `examples/user_pages.rs` at small size: batch loading through the cache
//! reads every user once, in fewer queries than per-key loading, counted by
//! SQLite itself; every page gets its 20 users.

// The library's test helpers (watchdog), shared rather than copied.
#[path = "../../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../examples/user_pages.rs"]
mod user_pages;

use std::sync::Arc;
use std::time::Duration;

use common::watchdog;
use singleflight_sync::TtlCache;
use user_pages::{modes, Database, Load, User, UserId};

const LIMIT: Duration = Duration::from_secs(120);

fn database(users: i64) -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(&dir.path().join("users.db"), users, 3).unwrap();
    (dir, db)
}

#[test]
fn batch_loading_reads_each_user_once_in_fewer_queries() {
    watchdog(LIMIT, || {
        let load = Load {
            threads: 8,
            pages_per_thread: 10,
            per_page: 20,
            users: 2_000,
            active: 100,
        };
        let (_dir, db) = database(load.users);
        let pages = load.pages() as u64;
        let shown = pages * load.per_page as u64;
        let distinct = load.distinct_users() as u64;
        // `render_pages` has checked every user of every page.
        let got: std::collections::HashMap<_, _> = modes(&db, &load).into_iter().collect();
        let per_key = &got["per-key, no cache"];
        assert_eq!((per_key.queries, per_key.rows), (shown, shown));
        let naive = &got["batch per page, no cache"];
        assert_eq!((naive.queries, naive.rows), (pages, shown));
        let group = &got["Group::try_work_many"];
        assert!(group.queries <= pages && group.rows <= shown, "{group:?}");
        let cached = &got["TtlCache, per-key"];
        assert_eq!(
            (cached.queries, cached.rows),
            (distinct, distinct),
            "one query per user"
        );
        let batched = &got["TtlCache, get_or_load_many"];
        assert_eq!(batched.rows, distinct, "every user read once");
        assert!(
            batched.queries <= pages,
            "at most one query a page: {batched:?}"
        );
        assert!(
            batched.queries < cached.queries,
            "fewer queries than per-key loading: {} vs {}",
            batched.queries,
            cached.queries
        );
        assert!(
            distinct < shown,
            "the pages overlap, or the test shows nothing"
        );
    });
}

#[test]
fn a_user_not_in_the_table_is_none_and_costs_one_query_with_the_others() {
    watchdog(LIMIT, || {
        let (_dir, db) = database(50);
        let cache: TtlCache<UserId, User> = TtlCache::new(Duration::from_secs(60));
        let before = db.queries();
        let ids = [UserId(1), UserId(999), UserId(2)];
        let got: Result<Vec<Option<User>>, Arc<rusqlite::Error>> =
            cache.try_get_or_load_many(&ids, |ids| db.load_users(ids));
        let names: Vec<Option<String>> = got
            .unwrap()
            .into_iter()
            .map(|u| u.map(|u| u.name))
            .collect();
        assert_eq!(names, [Some("User 1".into()), None, Some("User 2".into())]);
        assert_eq!(db.queries() - before, 1);
        assert_eq!(db.rows(), 2);
    });
}
