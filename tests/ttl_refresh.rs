//! `TtlCache` refresh: stale-while-revalidate inline and detached, failed
//! refreshes, jitter, XFetch, and what dropping the cache stops.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{wait_for, watchdog};
use singleflight_sync::{ManualClock, TtlCache};

const LONG: Duration = Duration::from_secs(20);
const TTL: Duration = Duration::from_secs(60);
const REFRESH: Duration = Duration::from_secs(30);

fn swr_cache(clock: &ManualClock) -> Arc<TtlCache<String, u32>> {
    Arc::new(
        TtlCache::builder()
            .ttl(TTL)
            .refresh_after(REFRESH)
            .clock(clock.clone())
            .build()
            .unwrap(),
    )
}

#[test]
fn a_stale_entry_is_refreshed_once_inline_while_others_get_the_current_value() {
    watchdog(LONG, || {
        let clock = ManualClock::new();
        let cache = swr_cache(&clock);
        assert_eq!(cache.get_or_load("k", || 1), 1);
        clock.advance(REFRESH);

        let (go_tx, go) = mpsc::channel::<()>();
        let (in_tx, in_refresh) = mpsc::channel::<()>();
        let c = cache.clone();
        let refresher = thread::spawn(move || {
            c.get_or_load("k", || {
                in_tx.send(()).unwrap();
                go.recv().unwrap();
                2
            })
        });
        in_refresh.recv().unwrap();
        // Everyone else: the current value at once, no second refresh.
        for _ in 0..100 {
            assert_eq!(
                cache.get_or_load("k", || unreachable!("one refresh per entry")),
                1
            );
        }
        go_tx.send(()).unwrap();
        assert_eq!(
            refresher.join().unwrap(),
            2,
            "the refresher gets the new value"
        );
        assert_eq!(cache.get("k"), Some(2));
        // The new value is fresh for another `refresh_after`.
        clock.advance(REFRESH - Duration::from_secs(1));
        assert_eq!(cache.get_or_load("k", || unreachable!()), 2);
    });
}

#[test]
fn detached_refresh_runs_on_the_spawner_and_nobody_waits() {
    watchdog(LONG, || {
        let clock = ManualClock::new();
        let spawned = Arc::new(AtomicUsize::new(0));
        let s = spawned.clone();
        let cache: Arc<TtlCache<String, u32>> = Arc::new(
            TtlCache::builder()
                .ttl(TTL)
                .refresh_after(REFRESH)
                .clock(clock.clone())
                .spawner(move |job| {
                    s.fetch_add(1, Ordering::SeqCst);
                    thread::spawn(job);
                    Ok(())
                })
                .build()
                .unwrap(),
        );
        assert_eq!(cache.get_or_load_detached("k", |_| 1), 1);
        clock.advance(REFRESH);
        let (go_tx, go) = mpsc::channel::<()>();
        let go = Mutex::new(go);
        let first = cache.get_or_load_detached("k", move |_| {
            go.lock().unwrap().recv().unwrap();
            2
        });
        assert_eq!(
            first, 1,
            "the caller that starts the refresh does not wait for it"
        );
        for _ in 0..100 {
            assert_eq!(
                cache.get_or_load_detached("k", |_| unreachable!("one refresh")),
                1
            );
        }
        assert_eq!(spawned.load(Ordering::SeqCst), 1);
        go_tx.send(()).unwrap();
        wait_for("the refreshed value", || cache.get("k") == Some(2));
    });
}

#[test]
fn a_failed_refresh_keeps_the_old_value_and_can_be_retried() {
    let clock = ManualClock::new();
    let cache = swr_cache(&clock);
    assert_eq!(cache.try_get_or_load::<_, String>("k", || Ok(1)), Ok(1));
    clock.advance(REFRESH);
    let failed = cache.try_get_or_load("k", || Err("flaky".to_string()));
    assert_eq!(failed, Ok(1), "the current value, not the refresh's error");
    assert_eq!(cache.get("k"), Some(1));
    // The entry is stale still, and the next caller refreshes it again.
    assert_eq!(cache.try_get_or_load::<_, String>("k", || Ok(2)), Ok(2));
    assert_eq!(cache.get("k"), Some(2));
}

#[test]
fn a_panicking_refresh_keeps_the_old_value_and_can_be_retried() {
    let clock = ManualClock::new();
    let cache = swr_cache(&clock);
    cache.get_or_load("k", || 1);
    clock.advance(REFRESH);
    let payload = common::expect_panic(|| cache.get_or_load("k", || panic!("refresh broke")));
    assert_eq!(common::panic_text(&*payload), "refresh broke");
    assert_eq!(cache.get("k"), Some(1));
    assert_eq!(
        cache.get_or_load("k", || 2),
        2,
        "retried by the next caller"
    );
}

#[test]
fn past_the_ttl_callers_wait_for_a_load() {
    let clock = ManualClock::new();
    let cache = swr_cache(&clock);
    cache.get_or_load("k", || 1);
    clock.advance(TTL);
    assert_eq!(cache.get("k"), None);
    assert_eq!(cache.get_or_load("k", || 2), 2);
}

#[test]
fn jitter_spreads_expiry_times() {
    const KEYS: u32 = 2_000;
    let clock = ManualClock::new();
    let cache: TtlCache<u32, u32> = TtlCache::builder()
        .ttl(Duration::from_secs(100))
        .jitter(0.5)
        .clock(clock.clone())
        .build()
        .unwrap();
    for k in 0..KEYS {
        cache.insert(k, k);
    }
    let alive = |cache: &TtlCache<u32, u32>| (0..KEYS).filter(|k| cache.get(k).is_some()).count();
    clock.advance(Duration::from_secs(49));
    assert_eq!(
        alive(&cache),
        KEYS as usize,
        "jitter shortens a TTL by at most half"
    );
    clock.advance(Duration::from_secs(26)); // t = 75 s: about half have gone
    let at_75 = alive(&cache);
    assert!(
        (600..1400).contains(&at_75),
        "{at_75} of {KEYS} alive at 75 s"
    );
    clock.advance(Duration::from_secs(25));
    assert_eq!(alive(&cache), 0, "none outlives the TTL");
}

#[test]
fn early_refresh_follows_the_xfetch_probability() {
    // Each key's load takes 1 s of the manual clock (delta), and each TTL is
    // chosen so all keys expire together. One second before expiry, with
    // beta = 1, XFetch refreshes with probability exp(-gap / (delta * beta))
    // = exp(-1) ~ 0.368.
    const KEYS: u64 = 2_000;
    let clock = ManualClock::new();
    let cache: TtlCache<u64, u64> = TtlCache::builder()
        .ttl(Duration::from_secs(10 * KEYS))
        .early_refresh(1.0)
        .clock(clock.clone())
        .build()
        .unwrap();
    let expiry = Duration::from_secs(KEYS + 100);
    for k in 0..KEYS {
        let ttl = expiry - Duration::from_secs(k + 1);
        cache.get_or_load_with_ttl(&k, ttl, || {
            clock.advance(Duration::from_secs(1));
            k
        });
    }
    clock.advance(expiry - Duration::from_secs(KEYS) - Duration::from_secs(1));
    let refreshed = AtomicUsize::new(0);
    for k in 0..KEYS {
        cache.get_or_load(&k, || {
            refreshed.fetch_add(1, Ordering::SeqCst);
            k
        });
    }
    let ratio = refreshed.load(Ordering::SeqCst) as f64 / KEYS as f64;
    let expected = (-1.0f64).exp();
    assert!(
        (ratio - expected).abs() < 0.06,
        "refreshed {ratio:.3}, expected {expected:.3}"
    );

    // Far from expiry it almost never fires: exp(-1000) is zero.
    let none = AtomicUsize::new(0);
    let far: TtlCache<u64, u64> = TtlCache::builder()
        .ttl(Duration::from_secs(10_000))
        .early_refresh(1.0)
        .clock(clock.clone())
        .build()
        .unwrap();
    far.get_or_load(&1, || {
        clock.advance(Duration::from_secs(1));
        1
    });
    for _ in 0..1000 {
        far.get_or_load(&1, || {
            none.fetch_add(1, Ordering::SeqCst);
            1
        });
    }
    assert_eq!(none.load(Ordering::SeqCst), 0);
}

#[test]
fn dropping_the_cache_waits_for_running_refreshes_and_skips_queued_ones() {
    watchdog(LONG, || {
        let clock = ManualClock::new();
        let queued: Arc<Mutex<Vec<singleflight_sync::Job>>> = Arc::default();
        let q = queued.clone();
        let run_now = Arc::new(AtomicBool::new(true));
        let r = run_now.clone();
        let cache: TtlCache<String, u32> = TtlCache::builder()
            .ttl(TTL)
            .refresh_after(REFRESH)
            .clock(clock.clone())
            .spawner(move |job| {
                if r.load(Ordering::SeqCst) {
                    thread::spawn(job);
                } else {
                    q.lock().unwrap().push(job);
                }
                Ok(())
            })
            .build()
            .unwrap();
        cache.insert("running".into(), 1);
        cache.insert("queued".into(), 1);
        clock.advance(REFRESH);

        let finished = Arc::new(AtomicBool::new(false));
        let (f, (in_tx, in_refresh)) = (finished.clone(), mpsc::channel::<()>());
        let in_tx = Mutex::new(in_tx);
        cache.get_or_load_detached("running", move |_| {
            in_tx.lock().unwrap().send(()).unwrap();
            thread::sleep(Duration::from_millis(100));
            f.store(true, Ordering::SeqCst);
            2
        });
        in_refresh.recv().unwrap();

        run_now.store(false, Ordering::SeqCst);
        let ran = Arc::new(AtomicBool::new(false));
        let rn = ran.clone();
        cache.get_or_load_detached("queued", move |_| {
            rn.store(true, Ordering::SeqCst);
            2
        });
        assert_eq!(queued.lock().unwrap().len(), 1);
        // The queued job runs (on its own thread) once drop has begun.
        let jobs = std::mem::take(&mut *queued.lock().unwrap());
        let releaser = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            for job in jobs {
                job();
            }
        });
        drop(cache);
        assert!(
            finished.load(Ordering::SeqCst),
            "drop returned before a running refresh ended"
        );
        releaser.join().unwrap();
        assert!(
            !ran.load(Ordering::SeqCst),
            "a refresh queued past the drop does not load"
        );
    });
}
