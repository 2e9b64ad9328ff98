//! A re-entrant call on the key being computed panics instead of deadlocking.

mod common;

use std::time::Duration;

use common::{expect_panic, panic_text, watchdog};
use singleflight_sync::Group;

#[test]
fn reentrant_call_on_the_same_key_panics_with_a_clear_message() {
    watchdog(Duration::from_secs(30), || {
        let group: Group<String, u32> = Group::builder().name("users").build();
        let payload = expect_panic(|| group.work("k", || group.work("k", || 1) + 1));
        let text = panic_text(&*payload);
        assert!(text.contains("re-entrant call"), "{text}");
        assert!(text.contains("`users`"), "{text}");
        assert!(text.contains("wait for itself forever"), "{text}");
        assert_eq!(group.in_flight(), 0);
        assert_eq!(group.work("k", || 3), 3);
    });
}

#[test]
fn nested_calls_on_other_keys_are_fine() {
    watchdog(Duration::from_secs(30), || {
        let group: Group<String, u32> = Group::new();
        let v = group.work("a", || group.work("b", || group.work("c", || 1) + 1) + 1);
        assert_eq!(v, 3);
        assert_eq!(group.in_flight(), 0);
    });
}

#[test]
fn the_same_key_in_another_group_is_fine() {
    let outer: Group<String, u32> = Group::new();
    let inner: Group<String, u32> = Group::new();
    assert_eq!(outer.work("k", || inner.work("k", || 1) + 1), 2);
}
