//! What a cache offers as a map: `contains_key`, `remove`, `invalidate`,
//! `invalidate_if`, `retain`, `clear` and `iter`.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use super::hooks::RemovalCause;
use super::store::Gone;
use super::TtlCache;

impl<K, V, S> TtlCache<K, V, S>
where
    K: Eq,
    V: Clone,
    S: BuildHasher,
{
    /// Whether `key` has a fresh value. Counts nothing and is no use of the
    /// entry for the eviction policy (unlike [`get`](Self::get)).
    ///
    /// # Examples
    ///
    /// ```
    /// let cache = singleflight_sync::TtlCache::<String, u8>::new(std::time::Duration::from_secs(9));
    /// cache.insert("k".into(), 1);
    /// assert!(cache.contains_key("k"));
    /// assert!(!cache.contains_key("other"));
    /// assert_eq!(cache.stats().hits + cache.stats().misses, 0);
    /// ```
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, _) = self.group.locate(key);
        let now = self.inner.clock.now();
        let mut store = self.shard(hash).lock();
        match store.find(hash, key) {
            Some(pos) => {
                let slot = store.slot(pos);
                now < slot.expires && slot.value().is_some()
            }
            None => false,
        }
    }

    /// Removes `key`'s entry and returns its value (if it had a fresh one),
    /// releasing a load of `key` running now as
    /// [`invalidate`](Self::invalidate) does. The listener is told
    /// ([`RemovalCause::Invalidated`]) with a clone of the value.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache = singleflight_sync::TtlCache::<String, u8>::new(std::time::Duration::from_secs(9));
    /// cache.insert("k".into(), 1);
    /// assert_eq!(cache.remove("k"), Some(1));
    /// assert_eq!(cache.remove("k"), None);
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = self.inner.clock.now();
        let mut gone = self.take(key);
        let (slot, _) = gone.first_mut()?;
        match slot.value() {
            Some(v) if now < slot.expires => {
                let v = v.clone();
                self.inner.dispose(gone);
                Some(v)
            }
            _ => {
                self.inner.dispose(gone);
                None
            }
        }
    }

    /// Removes `key`'s entry, and makes a load running for it now leave its
    /// value out of the cache (its callers still get it) and stop taking new
    /// callers. Returns whether an entry was removed.
    ///
    /// Loads of other keys are never disturbed.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let cache: TtlCache<String, u32> = TtlCache::new(Duration::from_secs(60));
    /// cache.insert("k".to_string(), 1);
    /// assert!(cache.invalidate("k"));
    /// assert!(!cache.invalidate("k"), "already gone");
    /// // Invalidated while loading: the caller gets the value, the cache does not.
    /// let v = cache.get_or_load("k", || {
    ///     cache.invalidate("k");
    ///     2
    /// });
    /// assert_eq!((v, cache.get("k")), (2, None));
    /// ```
    pub fn invalidate<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let gone = self.take(key);
        let found = gone.len() > 0;
        self.inner.dispose(gone);
        found
    }

    /// Takes `key`'s entry out and releases its load, under its shard's lock.
    fn take<Q>(&self, key: &Q) -> Gone<K, V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (hash, _) = self.group.locate(key);
        let mut gone = Gone::new();
        let mut store = self.shard(hash).lock();
        if let Some(pos) = store.find(hash, key) {
            gone.push(store.remove(pos), RemovalCause::Invalidated);
        }
        self.inner.settle(&mut store);
        // Under the shard lock, so a load of `key` cannot store between the
        // removal and the release (see `Inner::store`).
        self.group.forget(key);
        drop(store);
        gone
    }

    /// Removes every entry; loads running now leave their values out.
    ///
    /// # Examples
    ///
    /// ```
    /// use singleflight_sync::TtlCache;
    /// use std::time::Duration;
    ///
    /// let cache: TtlCache<String, u32> = TtlCache::new(Duration::from_secs(60));
    /// cache.insert("a".to_string(), 1);
    /// cache.insert("b".to_string(), 2);
    /// cache.clear();
    /// assert!(cache.is_empty());
    /// let v = cache.get_or_load("a", || {
    ///     cache.clear();
    ///     3
    /// });
    /// assert_eq!((v, cache.get("a")), (3, None), "a load running during clear is not kept");
    /// ```
    pub fn clear(&self) {
        for (index, shard) in self.inner.shards.iter().enumerate() {
            let mut store = shard.store.lock();
            let slots = store.clear();
            self.inner.settle(&mut store);
            // Under this shard's lock, as `invalidate` does, and only the
            // loads of this shard's keys.
            self.group.release_cache_shard(index, self.inner.mask);
            drop(store);
            let mut gone = Gone::new();
            for slot in slots {
                gone.push(slot, RemovalCause::Invalidated);
            }
            self.inner.dispose(gone);
        }
    }
}

impl<K, V, S> TtlCache<K, V, S>
where
    K: Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    /// Keeps only the entries for which `keep(&key, &value)` is true; the
    /// others leave as [`RemovalCause::Invalidated`]. Expired entries and
    /// cached errors are not shown to `keep` and stay until reclaimed.
    ///
    /// Weakly consistent, one shard at a time: each shard's entries are
    /// copied under its lock, `keep` runs on the copies with no lock held (so
    /// it may use the cache), and an entry leaves only if it was not replaced
    /// meanwhile. Entries stored during the walk may or may not be seen.
    /// Loads running now are not disturbed. Returns how many entries left.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache = singleflight_sync::TtlCache::<u32, u32>::new(std::time::Duration::from_secs(9));
    /// for k in 0..10 {
    ///     cache.insert(k, k * k);
    /// }
    /// assert_eq!(cache.retain(|_, v| v % 2 == 0), 5);
    /// assert_eq!(cache.len(), 5);
    /// assert!(cache.contains_key(&4) && !cache.contains_key(&3));
    /// ```
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) -> usize {
        let mut left = 0;
        for shard in 0..self.inner.shards.len() {
            let entries = self.snapshot(shard);
            let doomed: Vec<(u32, u32)> = entries
                .iter()
                .filter(|(k, v, _)| !keep(k, v))
                .map(|&(_, _, at)| at)
                .collect();
            if doomed.is_empty() {
                continue;
            }
            let mut gone = Gone::new();
            let mut store = self.inner.shards[shard].store.lock();
            for (short, stamp) in doomed {
                if let Some(pos) = store.find_stamp(short, stamp) {
                    gone.push(store.remove(pos), RemovalCause::Invalidated);
                }
            }
            self.inner.settle(&mut store);
            drop(store);
            left += gone.len();
            self.inner.dispose(gone);
        }
        left
    }

    /// Removes the entries for which `doomed(&key, &value)` is true (as
    /// [`retain`](Self::retain) with the opposite test); returns how many
    /// left.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache = singleflight_sync::TtlCache::<String, u32>::new(std::time::Duration::from_secs(9));
    /// cache.insert("user:1".into(), 1);
    /// cache.insert("user:2".into(), 2);
    /// cache.insert("team:1".into(), 3);
    /// assert_eq!(cache.invalidate_if(|k, _| k.starts_with("user:")), 2);
    /// assert_eq!(cache.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["team:1"]);
    /// ```
    pub fn invalidate_if(&self, mut doomed: impl FnMut(&K, &V) -> bool) -> usize {
        self.retain(|k, v| !doomed(k, v))
    }

    /// The fresh entries, as `(key, value)` clones. Weakly consistent, one
    /// shard at a time: a shard's entries are copied under its lock when the
    /// iterator reaches it, so it never blocks the cache for long and never
    /// shows a key twice; writes made during the walk may or may not be
    /// seen. Counts nothing and is no use of the entries for the policy.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache = singleflight_sync::TtlCache::<u32, &str>::new(std::time::Duration::from_secs(9));
    /// cache.insert(1, "a");
    /// cache.insert(2, "b");
    /// let mut all: Vec<_> = cache.iter().collect();
    /// all.sort();
    /// assert_eq!(all, [(1, "a"), (2, "b")]);
    /// ```
    pub fn iter(&self) -> Iter<'_, K, V, S> {
        Iter {
            cache: self,
            shard: 0,
            entries: Vec::new().into_iter(),
        }
    }

    /// Copies of shard `shard`'s fresh values, each with what names its slot.
    fn snapshot(&self, shard: usize) -> Vec<(K, V, (u32, u32))> {
        let now = self.inner.clock.now();
        let store = self.inner.shards[shard].store.lock();
        store
            .slots()
            .iter()
            .filter(|slot| now < slot.expires)
            .filter_map(|slot| {
                let v = slot.value()?;
                Some((slot.key.clone(), v.clone(), (slot.short(), slot.stamp())))
            })
            .collect()
    }
}

/// The iterator of [`TtlCache::iter`]: a weakly consistent walk, one shard
/// at a time.
pub struct Iter<'a, K, V, S> {
    cache: &'a TtlCache<K, V, S>,
    shard: usize,
    entries: std::vec::IntoIter<(K, V, (u32, u32))>,
}

impl<K, V, S> Iterator for Iter<'_, K, V, S>
where
    K: Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        loop {
            if let Some((k, v, _)) = self.entries.next() {
                return Some((k, v));
            }
            if self.shard == self.cache.inner.shards.len() {
                return None;
            }
            self.entries = self.cache.snapshot(self.shard).into_iter();
            self.shard += 1;
        }
    }
}

impl<K, V, S> std::fmt::Debug for Iter<'_, K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter")
            .field("shard", &self.shard)
            .finish_non_exhaustive()
    }
}
