//! Faults found in review, each held by a test: a panicking `V::clone`
//! while copies are handed out, a panicking `error_if`, a failed refresh with
//! negative caching, dropping a cache with refreshes queued or from inside
//! its own refresh, an observer that calls back into its group, and a few
//! edges (`forget_unshared` on a detached flight, `cancel` after the value,
//! a saturating manual clock, a huge `max_entries`).

mod common;

use singleflight_sync::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

static PANIC_CLONE: AtomicBool = AtomicBool::new(false);
static CLONES: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug)]
struct V(u32);
impl Clone for V {
    fn clone(&self) -> Self {
        if PANIC_CLONE.load(Ordering::SeqCst) && CLONES.fetch_add(1, Ordering::SeqCst) >= 1 {
            panic!("clone failed");
        }
        V(self.0)
    }
}

/// A `V::clone` that panics while replies are being copied used to leave a
/// blocked `work` follower waiting forever.
#[test]
fn a_clone_panic_while_handing_out_fails_the_rest_instead_of_stranding_them() {
    let group: Arc<Group<String, V>> = Arc::new(Group::new());
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Arc::new(std::sync::Mutex::new(go_rx));
    // Detached flight via do_chan (starter reply), blocked until told.
    let g = go_rx.clone();
    let rx1 = group.do_chan("k", move |_| {
        g.lock().unwrap().recv().unwrap();
        V(1)
    });
    let rx2 = group.do_chan("k", |_| V(2)); // joins: second reply
                                            // A blocked follower with no deadline.
    let (done_tx, done_rx) = mpsc::channel();
    {
        let group = group.clone();
        thread::spawn(move || {
            let r =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| group.work("k", || V(3))));
            let _ = done_tx.send(r.is_ok());
        });
    }
    while group.waiters("k") < 3 {
        thread::yield_now();
    }
    PANIC_CLONE.store(true, Ordering::SeqCst);
    go_tx.send(()).unwrap();
    let r1 = rx1.recv_timeout(Duration::from_secs(2));
    let r2 = rx2.recv_timeout(Duration::from_secs(2));
    // Exactly one message each: the first copy went out, the second failed.
    assert!(
        matches!(r1, Ok(Ok(_)) | Ok(Err(Error::Panicked(_)))),
        "{r1:?}"
    );
    assert!(
        matches!(r2, Ok(Ok(_)) | Ok(Err(Error::Panicked(_)))),
        "{r2:?}"
    );
    let follower = done_rx.recv_timeout(Duration::from_secs(3));
    PANIC_CLONE.store(false, Ordering::SeqCst);
    assert!(
        follower.is_ok(),
        "blocked follower hung after a Clone panic in hand_out"
    );
}

fn is_err_panics(_: &u32) -> bool {
    panic!("error_if panicked")
}

/// A panicking `error_if` used to leave the entry in the map.
#[test]
fn a_panicking_error_if_does_not_keep_the_flight_open() {
    let group: Arc<Group<String, u32>> = Arc::new(Group::builder().error_if(is_err_panics).build());
    // The panic is contained: the value counts as a value.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| group.work("k", || 1)));
    assert_eq!(r.ok(), Some(1));
    assert_eq!(group.stats().errors, 0);
    assert_eq!(group.in_flight(), 0, "the flight ended");
    let (tx, rx) = mpsc::channel();
    {
        let group = group.clone();
        thread::spawn(move || {
            let _ =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| group.work("k", || 2)));
            let _ = tx.send(());
        });
    }
    assert!(
        rx.recv_timeout(Duration::from_secs(2)).is_ok(),
        "next caller hangs: entry stranded"
    );
}

/// A failed refresh with `error_ttl` used to replace the value with the error.
#[test]
fn a_failed_refresh_with_error_ttl_keeps_the_value() {
    let clock = ManualClock::new();
    let cache: TtlCache<String, u32> = TtlCache::builder()
        .ttl(Duration::from_secs(60))
        .refresh_after(Duration::from_secs(30))
        .error_ttl(Duration::from_secs(5))
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(cache.try_get_or_load::<_, String>("k", || Ok(1)), Ok(1));
    clock.advance(Duration::from_secs(31));
    // The refresher gets the old value back (documented) ...
    assert_eq!(
        cache.try_get_or_load::<_, String>("k", || Err("down".into())),
        Ok(1)
    );
    // ... but the cache now serves the error instead of the old value.
    assert_eq!(
        cache.get("k"),
        Some(1),
        "failed refresh must keep the old value"
    );
    // Still due, so the next caller refreshes again, and succeeds.
    assert_eq!(cache.try_get_or_load::<_, String>("k", || Ok(9)), Ok(9));
}

/// Dropping a cache with a refresh still queued used to wait for it forever.
#[test]
fn dropping_a_cache_with_a_refresh_queued_returns() {
    let (done_tx, done_rx) = mpsc::channel();
    thread::spawn(move || {
        let (queue, jobs) = mpsc::channel::<Job>();
        let clock = ManualClock::new();
        let cache: TtlCache<String, u32> = TtlCache::builder()
            .ttl(Duration::from_secs(60))
            .refresh_after(Duration::from_secs(30))
            .clock(clock.clone())
            .spawner(move |job| queue.send(job).map_err(|_| std::io::Error::other("closed")))
            .build()
            .unwrap();
        cache.get_or_load_detached("k", |_| 1);
        clock.advance(Duration::from_secs(30));
        cache.get_or_load_detached("k", |_| 2); // refresh queued, never run
        drop(cache); // waits for the queued job forever
        drop(jobs);
        let _ = done_tx.send(());
    });
    assert!(
        done_rx.recv_timeout(Duration::from_secs(3)).is_ok(),
        "TtlCache::drop hung"
    );
}

/// Dropping the last handle inside the cache's own refresh used to wait for itself.
#[test]
fn dropping_the_last_handle_inside_its_own_refresh_returns() {
    let clock = ManualClock::new();
    let cache: Arc<TtlCache<String, u32>> = Arc::new(
        TtlCache::builder()
            .ttl(Duration::from_secs(60))
            .refresh_after(Duration::from_secs(30))
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    cache.get_or_load_detached("k", |_| 1);
    clock.advance(Duration::from_secs(30));
    let (tx, rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let held = cache.clone();
    struct Tell(mpsc::Sender<()>);
    impl Drop for Tell {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    cache.get_or_load_detached("k", move |_| {
        go_rx.recv().unwrap();
        let _tell = Tell(tx);
        drop(held); // last owner
        2
    });
    drop(cache);
    go_tx.send(()).unwrap();
    // `Tell` is dropped after `held`'s drop returns.
    assert!(
        rx.recv_timeout(Duration::from_secs(3)).is_ok(),
        "refresh thread deadlocked in TtlCache::drop"
    );
}

#[derive(Debug, Default)]
struct Gauge(std::sync::OnceLock<std::sync::Weak<Group<String, u32>>>);
impl Metrics for Gauge {
    fn waiter_joined(&self, _g: Option<&'static str>) {
        if let Some(g) = self.0.get().and_then(|w| w.upgrade()) {
            let _ = g.in_flight();
        }
    }
}

/// `do_chan` used to call the observer with the shard lock held.
#[test]
fn do_chan_calls_the_observer_outside_the_shard_lock() {
    let gauge = Arc::new(Gauge::default());
    let group: Arc<Group<String, u32>> =
        Arc::new(Group::builder().metrics(gauge.clone()).shards(1).build());
    gauge.0.set(Arc::downgrade(&group)).unwrap();
    let (tx, rx) = mpsc::channel();
    {
        let group = group.clone();
        thread::spawn(move || {
            let r = group.do_chan("k", |_| 1);
            let _ = r.recv();
            let _ = tx.send(());
        });
    }
    assert!(
        rx.recv_timeout(Duration::from_secs(3)).is_ok(),
        "do_chan self-deadlocked in waiter_joined"
    );
}

#[test]
fn forget_unshared_releases_a_detached_flight_only_its_starter_waits_on() {
    let group: Arc<Group<String, u32>> = Arc::new(Group::new());
    let (go_tx, go) = mpsc::channel::<()>();
    let go = std::sync::Mutex::new(go);
    let rx = group.do_chan("k", move |_| {
        go.lock().unwrap().recv().unwrap();
        1
    });
    assert!(group.forget_unshared("k"), "only its starter waits");
    // The second flight also waits, so the joiner below finds it running
    // (one that ended first would leave the joiner a flight of its own).
    let (go2_tx, go2) = mpsc::channel::<()>();
    let go2 = std::sync::Mutex::new(go2);
    let rx2 = group.do_chan("k", move |_| {
        go2.lock().unwrap().recv().unwrap();
        2
    });
    let _joiner = group.do_chan("k", |_| 3);
    assert!(
        !group.forget_unshared("k"),
        "someone joined the second flight"
    );
    go_tx.send(()).unwrap();
    go2_tx.send(()).unwrap();
    assert_eq!(
        rx.recv().unwrap().unwrap().value,
        1,
        "the released flight still answers"
    );
    assert_eq!(rx2.recv().unwrap().unwrap().value, 2);
}

#[test]
fn cancel_after_the_value_is_out_counts_no_cancellation() {
    let group: Group<String, u32> = Group::new();
    let (entered_tx, entered) = mpsc::channel::<()>();
    let (go_tx, go) = mpsc::channel::<()>();
    let go = std::sync::Mutex::new(go);
    let entered_tx = std::sync::Mutex::new(entered_tx);
    let rx = group.do_chan("k", move |_| {
        entered_tx.lock().unwrap().send(()).unwrap();
        go.lock().unwrap().recv().unwrap();
        1
    });
    entered.recv().unwrap();
    assert!(group.cancel("k"));
    go_tx.send(()).unwrap();
    assert!(matches!(rx.recv().unwrap(), Err(Error::Cancelled)));
    assert_eq!(group.stats().cancellations, 1);
    // A second flight whose value is out before `cancel`: nothing to cancel.
    let rx = group.do_chan("j", |_| 2);
    assert_eq!(rx.recv().unwrap().unwrap().value, 2);
    assert!(!group.cancel("j"));
    assert_eq!(group.stats().cancellations, 1);
}

#[test]
fn a_manual_clock_saturates_instead_of_wrapping() {
    let clock = ManualClock::new();
    clock.advance(Duration::MAX);
    let top = clock.now();
    clock.advance(Duration::from_nanos(1));
    assert_eq!(clock.now(), top, "never runs backwards");
}

#[test]
fn a_huge_max_entries_builds_without_allocating_for_it() {
    let cache: TtlCache<u64, u64> = TtlCache::builder()
        .ttl(Duration::from_secs(1))
        .max_entries(usize::MAX)
        .build()
        .unwrap();
    assert_eq!(cache.get_or_load(&1, || 2), 2);
}
