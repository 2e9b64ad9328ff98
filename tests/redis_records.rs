//! The fleet in one process, against a real Redis: values through the
//! codec and back, records that are garbage or too large, key names that
//! cannot collide, errors and panics reaching other groups, renewal, and
//! local coalescing. (Each `RedisGroup` stands for a process here; the
//! multi-process tests are in `redis_fleet.rs`.)
#![cfg(feature = "redis")]

mod common;
mod redis_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::watchdog;
use redis_support::{count, incr, RedisServer};
use singleflight_sync::redis::{BuildError, Codec, DecodeError, Error, RawCodec, RedisGroup};

const LIMIT: Duration = Duration::from_secs(60);

fn group<V>(server: &RedisServer, ns: &str) -> singleflight_sync::redis::RedisGroupBuilder<V> {
    RedisGroup::builder()
        .url(&server.url())
        .namespace(ns)
        .lease(Duration::from_millis(600))
        .result_ttl(Duration::from_secs(5))
        .op_timeout(Duration::from_millis(500))
}

#[test]
fn values_round_trip_through_redis() {
    watchdog(LIMIT, || {
        let server = RedisServer::start();
        let all_bytes: Vec<u8> = (0..=255).collect();
        let a: RedisGroup<Vec<u8>> = group(&server, "rt").codec(RawCodec).build().unwrap();
        let b: RedisGroup<Vec<u8>> = group(&server, "rt").codec(RawCodec).build().unwrap();
        assert_eq!(a.work("bytes", || all_bytes.clone()).unwrap(), all_bytes);
        assert_eq!(
            b.work("bytes", || panic!("b must read a's value")).unwrap(),
            all_bytes
        );
        assert_eq!(
            (a.stats().led, b.stats().led, b.stats().remote_values),
            (1, 0, 1)
        );

        let text = "héllo, wörld: \u{1F980}".to_string();
        let a: RedisGroup<String> = group(&server, "rt-s").codec(RawCodec).build().unwrap();
        let b: RedisGroup<String> = group(&server, "rt-s").codec(RawCodec).build().unwrap();
        assert_eq!(a.work("text", || text.clone()).unwrap(), text);
        assert_eq!(b.work("text", || unreachable!()).unwrap(), text);
        // The empty value is a value too (a record is never empty).
        assert_eq!(a.work("empty", String::new).unwrap(), "");
        assert_eq!(b.work("empty", || unreachable!()).unwrap(), "");
    });
}

#[cfg(feature = "serde")]
#[test]
fn serde_values_round_trip_with_postcard() {
    use singleflight_sync::redis::PostcardCodec;
    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct User {
        id: u64,
        name: String,
        tags: Vec<String>,
        score: Option<f64>,
    }
    watchdog(LIMIT, || {
        let server = RedisServer::start();
        let user = User {
            id: 42,
            name: "Ada".into(),
            tags: vec!["admin".into(), "λ".into()],
            score: Some(0.5),
        };
        let a: RedisGroup<User> = group(&server, "pc").codec(PostcardCodec).build().unwrap();
        let b: RedisGroup<User> = group(&server, "pc").codec(PostcardCodec).build().unwrap();
        assert_eq!(a.work("u", || user.clone()).unwrap(), user);
        assert_eq!(b.work("u", || unreachable!()).unwrap(), user);
        // A record of another shape is a decode error, not a panic.
        let mut conn = server.conn();
        let mut record = b"sf\x01v".to_vec();
        record.extend_from_slice(&[0xff; 3]);
        let _: () = redis::cmd("SET")
            .arg("pc:result:bad")
            .arg(record)
            .query(&mut conn)
            .unwrap();
        let r = b.work("bad", || unreachable!());
        assert!(
            matches!(&r, Err(Error::Decode(e)) if matches!(**e, DecodeError::Codec(_))),
            "{r:?}"
        );
    });
}

#[test]
fn garbage_foreign_and_oversized_records_are_errors_not_panics() {
    watchdog(LIMIT, || {
        let server = RedisServer::start();
        let mut conn = server.conn();
        let set = |conn: &mut redis::Connection, key: &str, value: &[u8]| {
            let _: () = redis::cmd("SET").arg(key).arg(value).query(conn).unwrap();
        };
        let g: RedisGroup<String> = group(&server, "bad")
            .codec(RawCodec)
            .max_record_bytes(1024)
            .build()
            .unwrap();
        let runs = AtomicUsize::new(0);
        let f = || {
            runs.fetch_add(1, Ordering::SeqCst);
            "fresh".to_string()
        };

        set(&mut conn, "bad:result:garbage", b"garbage");
        let r = g.work("garbage", f);
        assert!(
            matches!(&r, Err(Error::Decode(e)) if matches!(**e, DecodeError::Malformed(_))),
            "{r:?}"
        );

        set(&mut conn, "bad:result:short", b"sf");
        assert!(matches!(g.work("short", f), Err(Error::Decode(_))));

        set(&mut conn, "bad:result:utf8", b"sf\x01v\xff\xfe");
        let r = g.work("utf8", f);
        assert!(
            matches!(&r, Err(Error::Decode(e)) if matches!(**e, DecodeError::Codec(_))),
            "{r:?}"
        );
        assert!(r.unwrap_err().to_string().contains("does not decode"));

        // 1 MiB planted under a 1 KiB limit: refused by size, never sent.
        let mut big = b"sf\x01v".to_vec();
        big.resize(1 << 20, b'x');
        set(&mut conn, "bad:result:big", &big);
        let r = g.work("big", f);
        match &r {
            Err(Error::Decode(e)) => match **e {
                DecodeError::TooLarge { size, limit } => assert_eq!((size, limit), (1 << 20, 1024)),
                ref other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }

        // Not even a string: Redis refuses the script; the call runs `f`
        // on its own, counted, and does not panic.
        let _: () = redis::cmd("RPUSH")
            .arg("bad:result:list")
            .arg("x")
            .query(&mut conn)
            .unwrap();
        assert_eq!(g.work("list", f).unwrap(), "fresh");

        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "only the wrong-type key ran f"
        );
        let stats = g.stats();
        assert_eq!(stats.decode_errors, 4, "{stats:?}");
        assert_eq!(stats.degraded, 1, "{stats:?}");
        assert!(stats.redis_errors >= 1, "{stats:?}");

        // A value over the limit is not stored; the next caller runs f.
        let big_value = "y".repeat(2000);
        assert_eq!(
            g.work("big-value", || big_value.clone()).unwrap(),
            big_value
        );
        assert_eq!(g.stats().encode_errors, 1);
        let exists: i64 = redis::cmd("EXISTS")
            .arg("bad:result:big-value")
            .query(&mut conn)
            .unwrap();
        assert_eq!(exists, 0);
    });
}

#[test]
fn keys_never_collide_across_kinds_or_namespaces() {
    watchdog(LIMIT, || {
        let server = RedisServer::start();
        let a: RedisGroup<String> = group(&server, "a").codec(RawCodec).build().unwrap();
        let a_b: RedisGroup<String> = group(&server, "a.b").codec(RawCodec).build().unwrap();
        let keys = [
            "x",
            "lease:x",
            "result:x",
            "done",
            ":",
            "",
            "a:result:x",
            "\u{0}\n*?[]{}",
        ];
        for key in keys {
            assert_eq!(
                a.work(key, || format!("a/{key}")).unwrap(),
                format!("a/{key}")
            );
        }
        for key in keys {
            assert_eq!(
                a_b.work(key, || format!("ab/{key}")).unwrap(),
                format!("ab/{key}")
            );
            // Read back from Redis (within result_ttl), never another's.
            assert_eq!(a.work(key, || unreachable!()).unwrap(), format!("a/{key}"));
        }
        assert_eq!(a.stats().led, keys.len() as u64);
        assert_eq!(a_b.stats().led, keys.len() as u64);
    });
}

/// Runs a's leading call and b's waiting call on two threads.
fn while_b_waits<T: Send, U: Send>(
    lead: impl FnOnce() -> T + Send,
    b_work: impl FnOnce() -> U + Send,
) -> (T, U) {
    thread::scope(|s| {
        let led = s.spawn(lead);
        let waited = s.spawn(b_work);
        (led.join().unwrap(), waited.join().unwrap())
    })
}

#[test]
fn a_leaders_error_reaches_other_processes_as_a_record() {
    watchdog(LIMIT, || {
        let server = RedisServer::start();
        // An error record for 1 s: b reads it well within that, however
        // loaded the machine.
        let build = || -> RedisGroup<String> {
            group(&server, "err")
                .error_ttl(Duration::from_secs(1))
                .codec(RawCodec)
                .build()
                .unwrap()
        };
        let (a, b) = (build(), build());
        let started = Barrier::new(2);
        let (led, waited) = while_b_waits(
            || {
                a.try_work("k", || {
                    started.wait();
                    thread::sleep(Duration::from_millis(300));
                    Err::<String, _>("backend down".to_string())
                })
            },
            || {
                started.wait();
                thread::sleep(Duration::from_millis(50));
                b.try_work("k", || Ok::<_, String>("b ran".to_string()))
            },
        );
        assert!(
            matches!(&led, Err(Error::Failed(e)) if **e == "backend down"),
            "{led:?}"
        );
        match &waited {
            Err(Error::Remote(e)) => assert_eq!(e.message(), "backend down"),
            other => panic!("b should get a's error: {other:?}"),
        }
        assert_eq!(b.stats().remote_errors, 1);
        // The error record is short-lived: after error_ttl, b runs again.
        thread::sleep(Duration::from_millis(1100));
        assert_eq!(
            b.try_work("k", || Ok::<_, String>("b ran".into())).unwrap(),
            "b ran"
        );
    });
}

#[test]
fn with_error_ttl_zero_a_waiter_takes_over_instead() {
    watchdog(LIMIT, || {
        let server = RedisServer::start();
        let mut conn = server.conn();
        let build = || -> RedisGroup<String> {
            group(&server, "err0")
                .codec(RawCodec)
                .error_ttl(Duration::ZERO)
                .build()
                .unwrap()
        };
        let (a, b) = (build(), build());
        let started = Barrier::new(2);
        let (led, waited) = while_b_waits(
            || {
                a.try_work("k", || {
                    started.wait();
                    thread::sleep(Duration::from_millis(300));
                    Err::<String, _>("backend down".to_string())
                })
            },
            || {
                started.wait();
                thread::sleep(Duration::from_millis(50));
                b.try_work("k", || {
                    incr(&mut server.conn(), "b-runs");
                    Ok::<_, String>("b ran".to_string())
                })
            },
        );
        assert!(matches!(led, Err(Error::Failed(_))));
        assert_eq!(waited.unwrap(), "b ran");
        assert_eq!(count(&mut conn, "b-runs"), 1);
        assert_eq!(b.stats().took_over, 1);
    });
}

#[test]
fn a_leaders_panic_unwinds_there_and_reaches_others_as_panicked() {
    watchdog(LIMIT, || {
        let server = RedisServer::start();
        // The leader's panic record lives 2 s (the leader's setting).
        let a: RedisGroup<String> = group(&server, "pan")
            .name("users")
            .error_ttl(Duration::from_secs(2))
            .codec(RawCodec)
            .build()
            .unwrap();
        let b: RedisGroup<String> = group(&server, "pan").codec(RawCodec).build().unwrap();
        let started = Barrier::new(2);
        let (led, waited) = while_b_waits(
            || {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    a.work("k", || {
                        started.wait();
                        thread::sleep(Duration::from_millis(300));
                        panic!("boom")
                    })
                }))
            },
            || {
                started.wait();
                thread::sleep(Duration::from_millis(50));
                b.try_work("k", || Ok::<_, String>("b ran".to_string()))
            },
        );
        let payload = led.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
        match &waited {
            Err(Error::Panicked(p)) => assert_eq!(p.message(), "boom"),
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn the_lease_is_renewed_while_f_runs_past_it() {
    watchdog(LIMIT, || {
        let server = RedisServer::start();
        let mut conn = server.conn();
        // 900 ms leases, renewed every 300 ms; a's f runs 2.5 s, so only
        // renewal keeps b waiting.
        let build = || -> RedisGroup<String> {
            group(&server, "renew")
                .lease(Duration::from_millis(900))
                .codec(RawCodec)
                .build()
                .unwrap()
        };
        let (a, b) = (build(), build());
        let started = Barrier::new(2);
        let (led, waited) = while_b_waits(
            || {
                a.work("slow", || {
                    incr(&mut server.conn(), "runs");
                    started.wait();
                    thread::sleep(Duration::from_millis(2500));
                    "a's".to_string()
                })
            },
            || {
                started.wait();
                b.work("slow", || {
                    incr(&mut server.conn(), "runs");
                    "b's".to_string()
                })
            },
        );
        assert_eq!(led.unwrap(), "a's");
        assert_eq!(waited.unwrap(), "a's");
        assert_eq!(count(&mut conn, "runs"), 1);
        assert_eq!(a.stats().leases_lost, 0);
        assert_eq!(b.stats().took_over, 0);
    });
}

#[test]
fn threads_of_one_process_send_one_request_per_key() {
    watchdog(LIMIT, || {
        let server = RedisServer::start();
        let g: Arc<RedisGroup<String>> =
            Arc::new(group(&server, "local").codec(RawCodec).build().unwrap());
        let runs = Arc::new(AtomicUsize::new(0));
        let all = Arc::new(Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (g, runs, all) = (g.clone(), runs.clone(), all.clone());
                thread::spawn(move || {
                    all.wait();
                    g.work("hot", || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        thread::sleep(Duration::from_millis(300));
                        "v".to_string()
                    })
                    .unwrap()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), "v");
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let (fleet, local) = (g.stats(), g.local_stats());
        assert_eq!(fleet.led, 1);
        assert_eq!((local.calls, local.executions, local.shared), (16, 1, 15));
    });
}

#[test]
fn bad_settings_are_refused_by_name() {
    let setting = |r: Result<RedisGroup<String>, BuildError>| match r {
        Err(BuildError::Setting { setting, .. }) => setting,
        other => panic!("{other:?}"),
    };
    let base = || {
        RedisGroup::<String>::builder()
            .url("redis://127.0.0.1/")
            .codec(RawCodec)
    };
    assert_eq!(
        setting(RedisGroup::<String>::builder().codec(RawCodec).build()),
        "url"
    );
    assert_eq!(
        setting(RedisGroup::<String>::builder().url("redis://x/").build()),
        "codec"
    );
    assert_eq!(setting(base().namespace("a:b").build()), "namespace");
    assert_eq!(
        setting(base().lease(Duration::from_millis(5)).build()),
        "lease"
    );
    assert_eq!(
        setting(base().op_timeout(Duration::from_secs(20)).build()),
        "op_timeout"
    );
    assert_eq!(
        setting(base().result_ttl(Duration::ZERO).build()),
        "result_ttl"
    );
    assert_eq!(
        setting(base().wait_timeout(Duration::ZERO).build()),
        "wait_timeout"
    );
    assert_eq!(
        setting(base().max_record_bytes(3).build()),
        "max_record_bytes"
    );
    let r = RedisGroup::<String>::builder()
        .url("not a url")
        .codec(RawCodec)
        .build();
    assert!(matches!(r, Err(BuildError::Url(_))), "{r:?}");
    // The codec contract the group relies on.
    assert!(Codec::<String>::decode(&RawCodec, b"\xc3").is_err());
}

#[test]
fn an_acl_user_in_the_url_logs_in_and_a_wrong_password_degrades() {
    watchdog(LIMIT, || {
        // `default` off: nothing works without logging in. `app` may touch
        // only the `acl` namespace's keys and channel.
        let server = RedisServer::start_with(&[
            "--user",
            "default",
            "off",
            "--user",
            "admin",
            "on",
            ">admin-pw",
            "~*",
            "&*",
            "+@all",
            "--user",
            "app",
            "on",
            ">app-pw",
            "~acl:*",
            "&acl:*",
            "+@all",
        ]);
        let with = |creds: &str, strict: bool| -> RedisGroup<String> {
            RedisGroup::builder()
                .url(&format!("{}?{creds}", server.url()))
                .namespace("acl")
                .lease(Duration::from_millis(600))
                .result_ttl(Duration::from_secs(5))
                .op_timeout(Duration::from_millis(500))
                .strict(strict)
                .codec(RawCodec)
                .build()
                .unwrap()
        };
        let app = with("user=app&pass=app-pw", false);
        let again = with("user=app&pass=app-pw", false);
        assert_eq!(app.work("k", || "v".to_string()).unwrap(), "v");
        assert_eq!(again.work("k", || unreachable!()).unwrap(), "v");
        assert_eq!((app.stats().led, again.stats().remote_values), (1, 1));
        assert_eq!(app.stats().degraded, 0);

        let wrong = with("user=app&pass=nope", false);
        assert_eq!(wrong.work("k2", || "mine".to_string()).unwrap(), "mine");
        assert_eq!(wrong.stats().degraded, 1);
        let strict = with("user=app&pass=nope", true);
        let r = strict.work("k3", || unreachable!());
        assert!(
            matches!(&r, Err(Error::Redis(e)) if e.kind() == redis::ErrorKind::AuthenticationFailed),
            "{r:?}"
        );
        // Another namespace is outside app's keys: refused by Redis, so
        // the call runs alone, counted.
        let outside: RedisGroup<String> = RedisGroup::builder()
            .url(&format!("{}?user=app&pass=app-pw", server.url()))
            .namespace("other")
            .codec(RawCodec)
            .build()
            .unwrap();
        assert_eq!(outside.work("k", || "alone".to_string()).unwrap(), "alone");
        assert_eq!(outside.stats().degraded, 1);
    });
}

/// A codec that panics instead of returning an error (a bug).
struct PanickyCodec;

impl Codec<String> for PanickyCodec {
    fn encode(&self, _: &String) -> Result<Vec<u8>, singleflight_sync::redis::CodecError> {
        panic!("encode bug")
    }
    fn decode(&self, bytes: &[u8]) -> Result<String, singleflight_sync::redis::CodecError> {
        Codec::<String>::decode(&RawCodec, bytes)
    }
}

#[test]
fn a_panicking_codec_unwinds_its_caller_and_the_fleet_takes_over() {
    watchdog(LIMIT, || {
        let server = RedisServer::start();
        let a: RedisGroup<String> = group(&server, "codec").codec(PanickyCodec).build().unwrap();
        let b: RedisGroup<String> = group(&server, "codec").codec(RawCodec).build().unwrap();
        let started = Barrier::new(2);
        let (led, waited) = while_b_waits(
            || {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    a.work("k", || {
                        started.wait();
                        thread::sleep(Duration::from_millis(100));
                        "a's".to_string()
                    })
                }))
            },
            || {
                started.wait();
                b.work("k", || "b's".to_string())
            },
        );
        let payload = led.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"encode bug"));
        // a's lease expired (600 ms) and b took over.
        assert_eq!(waited.unwrap(), "b's");
        assert_eq!(b.stats().took_over, 1);
        // Nothing is stuck in a: its next flight of the key reads b's value.
        assert_eq!(a.work("k", || unreachable!()).unwrap(), "b's");
    });
}
