//! `rediss://` (feature `redis-tls`): a real `redis-server` speaking only
//! TLS on a loopback port, with a certificate from a CA made for the test
//! (by the `openssl` command line). A group given that CA as its root
//! shares flights over TLS; one speaking plain text, or trusting only the
//! system's roots, cannot talk to it and runs alone, counted.
#![cfg(feature = "redis-tls")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::watchdog;
use singleflight_sync::redis::{Error, RawCodec, RedisGroup, RedisGroupBuilder};

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| {
            panic!("the TLS test needs the `openssl` command ({e}): apt-get install -y openssl")
        });
    assert!(status.success(), "openssl {args:?} failed");
}

/// A CA, and a certificate it signed for `localhost` and 127.0.0.1.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=sf-test-ca",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
}

struct TlsRedis {
    dir: PathBuf,
    port: u16,
    child: Child,
}

impl TlsRedis {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("sf-redis-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        certificates(&dir);
        // A free loopback port (released just before redis takes it).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("timeout")
            .args([
                "-s",
                "KILL",
                "600",
                "redis-server",
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
            ])
            .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
            .args([
                "--tls-cert-file",
                "server.crt",
                "--tls-key-file",
                "server.key",
                "--tls-ca-cert-file",
                "ca.crt",
            ])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (apt-get install -y redis-server)");
        let server = TlsRedis { dir, port, child };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server never listened on {port}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    fn builder(&self, client: redis::Client) -> RedisGroupBuilder<String> {
        RedisGroup::builder()
            .client(client)
            .namespace("tls")
            .lease(Duration::from_secs(2))
            .result_ttl(Duration::from_secs(5))
            .op_timeout(Duration::from_secs(1))
            .codec(RawCodec)
    }

    fn trusted(&self) -> RedisGroup<String> {
        let ca = std::fs::read(self.dir.join("ca.crt")).unwrap();
        let certs = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca),
        };
        let url = format!("rediss://localhost:{}/", self.port);
        self.builder(redis::Client::build_with_tls(url, certs).unwrap())
            .build()
            .unwrap()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        // `timeout` passes SIGTERM on to redis-server.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn flights_are_shared_over_tls_and_untrusted_or_plain_links_run_alone() {
    watchdog(Duration::from_secs(60), || {
        let server = TlsRedis::start();
        let (a, b) = (server.trusted(), server.trusted());
        assert_eq!(a.work("k", || "over tls".to_string()).unwrap(), "over tls");
        assert_eq!(
            b.work("k", || unreachable!("b reads a's value")).unwrap(),
            "over tls"
        );
        assert_eq!((a.stats().led, b.stats().remote_values), (1, 1));
        assert_eq!(a.stats().degraded + b.stats().degraded, 0);

        // The system's roots do not know the test's CA: no connection.
        let url = format!("rediss://localhost:{}/", server.port);
        let untrusted = server
            .builder(redis::Client::open(url.as_str()).unwrap())
            .strict(true)
            .build()
            .unwrap();
        let r = untrusted.work("k", || unreachable!());
        assert!(matches!(r, Err(Error::Redis(_))), "{r:?}");
        let lenient = server
            .builder(redis::Client::open(url.as_str()).unwrap())
            .build()
            .unwrap();
        assert_eq!(lenient.work("k", || "alone".to_string()).unwrap(), "alone");
        assert_eq!(lenient.stats().degraded, 1);

        // Plain text on the TLS port: no answer Redis would give.
        let plain = format!("redis://127.0.0.1:{}/", server.port);
        let plain = server
            .builder(redis::Client::open(plain.as_str()).unwrap())
            .op_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        assert_eq!(plain.work("k", || "alone".to_string()).unwrap(), "alone");
        assert_eq!((plain.stats().degraded, plain.stats().led), (1, 0));
    });
}
