//! What a group shares with its two threads: the link to Redis, the
//! settings, the local waiters the subscriber wakes, and the leases the
//! renewer extends.
//!
//! The subscriber holds one connection subscribed to the namespace's
//! channel and wakes the local waiter of each key it hears; the renewer
//! extends every lease this process holds, a third of a lease after the
//! last time. Both hold the shared state weakly or check `closed`, so they
//! end within a read timeout or a tick of the group being dropped.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::link::Link;
use super::stats::bump;
use crate::sync::{AtomicUsize, Condvar, Mutex, Ordering, Shared, SharedWeak};

/// How long the subscriber blocks on a read before it checks that its
/// group is still alive.
const SUBSCRIBER_TICK: Duration = Duration::from_millis(200);
/// How often a waiter re-reads Redis while the subscriber is not
/// subscribed (it would miss the completion message).
pub(crate) const UNSUBSCRIBED_POLL: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) lease: Duration,
    pub(crate) result_ttl: Duration,
    pub(crate) error_ttl: Duration,
    pub(crate) wait_timeout: Duration,
    pub(crate) max_record_bytes: usize,
    pub(crate) strict: bool,
    pub(crate) name: Option<&'static str>,
}

#[derive(Debug)]
pub(crate) struct Fleet {
    pub(crate) link: Link,
    pub(crate) settings: Settings,
    waiters: Mutex<HashMap<String, Shared<Waiter>>>,
    /// 1 while the subscriber's connection is subscribed.
    subscribed: AtomicUsize,
    leases: Mutex<Leases>,
    renew_now: Condvar,
}

#[derive(Debug, Default)]
struct Leases {
    held: HashMap<String, String>,
    closed: bool,
}

/// The one local caller of a key (the local group's leader) that waits on
/// another process's flight.
#[derive(Debug, Default)]
pub(crate) struct Waiter {
    fired: Mutex<bool>,
    done: Condvar,
}

impl Waiter {
    /// Returns when woken or at `deadline`. No lost wakeup: `fired` is set
    /// under its lock before the notify, and checked under it before the
    /// wait; it is reset here, after the caller has seen the wakeup, so a
    /// completion heard while the caller was reading Redis is not missed.
    pub(crate) fn wait_until(&self, deadline: Instant) {
        let mut fired = self.fired.lock();
        while !*fired && Instant::now() < deadline {
            fired = self.done.wait_until(fired, deadline);
        }
        *fired = false;
    }

    fn wake(&self) {
        *self.fired.lock() = true;
        self.done.notify_all();
    }
}

/// Unregisters a waiter when its flight stops waiting (or unwinds).
pub(crate) struct WaitGuard<'a> {
    fleet: &'a Fleet,
    key: &'a str,
    pub(crate) waiter: Shared<Waiter>,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let mut waiters = self.fleet.waiters.lock();
        if waiters
            .get(self.key)
            .is_some_and(|w| Shared::ptr_eq(w, &self.waiter))
        {
            waiters.remove(self.key);
        }
    }
}

/// Stops the renewal of a lease when its leader's `f` returns (or unwinds).
pub(crate) struct LeaseGuard<'a> {
    fleet: &'a Fleet,
    key: &'a str,
}

impl Drop for LeaseGuard<'_> {
    fn drop(&mut self) {
        self.fleet.leases.lock().held.remove(self.key);
    }
}

impl Fleet {
    pub(crate) fn new(link: Link, settings: Settings) -> Self {
        Fleet {
            link,
            settings,
            waiters: Mutex::new(HashMap::new()),
            subscribed: AtomicUsize::new(0),
            leases: Mutex::new(Leases::default()),
            renew_now: Condvar::new(),
        }
    }

    pub(crate) fn subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire) == 1
    }

    /// Registers the waiter for `key` before its first read of Redis, so a
    /// completion published after that read is heard.
    pub(crate) fn register<'a>(&'a self, key: &'a str) -> WaitGuard<'a> {
        let waiter = Shared::new(Waiter::default());
        self.waiters.lock().insert(key.to_owned(), waiter.clone());
        WaitGuard {
            fleet: self,
            key,
            waiter,
        }
    }

    /// Hands the lease on `key` to the renewer until the guard drops. The
    /// renewer is not woken: it ticks every third of a lease, so it renews
    /// this lease within a third of a lease of its start, and a short `f`
    /// costs no wakeup at all.
    pub(crate) fn hold<'a>(&'a self, key: &'a str, token: &str) -> LeaseGuard<'a> {
        self.leases
            .lock()
            .held
            .insert(key.to_owned(), token.to_owned());
        LeaseGuard { fleet: self, key }
    }

    fn wake(&self, key: &[u8]) {
        let Ok(key) = std::str::from_utf8(key) else {
            return; // not one of ours: no waiter has a key that is not UTF-8
        };
        let waiter = self.waiters.lock().get(key).cloned();
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }

    fn wake_all(&self) {
        let all: Vec<_> = self.waiters.lock().values().cloned().collect();
        for waiter in all {
            waiter.wake();
        }
    }

    /// Ends the renewer (the subscriber ends on its own, holding the group
    /// weakly).
    pub(crate) fn close(&self) {
        self.leases.lock().closed = true;
        self.renew_now.notify_all();
    }
}

/// The subscriber thread: one connection subscribed to the namespace's
/// channel, reconnecting after a failure, while the group lives.
pub(crate) fn subscriber(fleet: SharedWeak<Fleet>) {
    loop {
        let Some(me) = fleet.upgrade() else { return };
        let retry = me.link.op_timeout.max(UNSUBSCRIBED_POLL);
        let mut conn = match me.link.connect() {
            Ok(conn) => conn,
            Err(_) => {
                bump(&me.link.counters.redis_errors);
                drop(me);
                std::thread::sleep(retry);
                continue;
            }
        };
        let channel = me.link.names.channel.clone();
        let mut pubsub = conn.as_pubsub();
        if pubsub.subscribe(&channel).is_err()
            || pubsub.set_read_timeout(Some(SUBSCRIBER_TICK)).is_err()
        {
            bump(&me.link.counters.redis_errors);
            drop(me);
            std::thread::sleep(retry);
            continue;
        }
        me.subscribed.store(1, Ordering::Release);
        // Completions published while this connection was down were missed:
        // every waiter re-reads Redis now.
        me.wake_all();
        drop(me);
        loop {
            let message = pubsub.get_message();
            let Some(me) = fleet.upgrade() else { return };
            match message {
                Ok(msg) => me.wake(msg.get_payload_bytes()),
                Err(e) if e.is_timeout() => {}
                Err(_) => {
                    me.subscribed.store(0, Ordering::Release);
                    bump(&me.link.counters.redis_errors);
                    me.wake_all();
                    break;
                }
            }
        }
    }
}

/// The renewer thread: every third of a lease, extends each lease this
/// process holds, if it still holds its token. Ends when the group closes.
pub(crate) fn renewer(fleet: Shared<Fleet>) {
    let every = fleet.settings.lease / 3;
    let mut leases = fleet.leases.lock();
    loop {
        leases = fleet.renew_now.wait_until(leases, Instant::now() + every);
        if leases.closed {
            return;
        }
        if leases.held.is_empty() {
            continue;
        }
        let due: Vec<(String, String)> = leases
            .held
            .iter()
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect();
        drop(leases);
        for (key, token) in due {
            if let Ok(false) = fleet.link.renew(&key, &token, fleet.settings.lease) {
                // Not lost if its leader released it meanwhile.
                if fleet.leases.lock().held.get(&key) == Some(&token) {
                    bump(&fleet.link.counters.leases_lost);
                }
            }
        }
        leases = fleet.leases.lock();
    }
}
