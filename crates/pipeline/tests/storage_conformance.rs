//! Storage conformance: one suite of cases (put/get/list/overwrite/missing/ranges/
//! multipart/concurrent writers/conditional create/delete/nested prefixes/child stores/
//! JSON) run against the in-memory store, the local filesystem and a real S3 server
//! (SeaweedFS, started by `support/seaweedfs.rs`), plus the mapping of failures
//! (unreachable endpoint, refused writes, bad URLs and keys) onto `StorageError`.

#[path = "support/seaweedfs.rs"]
mod seaweedfs;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aperture_pipeline::storage::{
    MULTIPART_PART_SIZE, S3Options, StorageError, Store, StoreOptions,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A store under test, with what keeps it alive and how to reopen it by URL.
struct Fixture {
    store: Store,
    options: StoreOptions,
    _tmp: Option<tempfile::TempDir>,
}

impl Fixture {
    /// The same objects opened again from the store's URL.
    fn reopen(&self, url: &str) -> Store {
        Store::from_url_with(url, &self.options).unwrap()
    }
}

/// A name unique within this test process (tests share one memory registry and one
/// S3 bucket).
fn unique(name: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

mod fixtures {
    use super::*;

    pub fn memory(case: &str) -> Option<Fixture> {
        let store = Store::from_url(&format!("memory://conformance/{}", unique(case))).unwrap();
        Some(Fixture {
            store,
            options: StoreOptions::default(),
            _tmp: None,
        })
    }

    pub fn local(case: &str) -> Option<Fixture> {
        let tmp = tempfile::tempdir().unwrap();
        // A directory that does not exist yet: created on first write.
        let dir = tmp.path().join(case).join("out");
        let store = Store::from_url(dir.to_str().unwrap()).unwrap();
        Some(Fixture {
            store,
            options: StoreOptions::default(),
            _tmp: Some(tmp),
        })
    }

    pub fn s3(case: &str) -> Option<Fixture> {
        let server = seaweedfs::server()?;
        Some(Fixture {
            store: server.store(&unique(case)),
            options: server.options(),
            _tmp: None,
        })
    }
}

/// Deterministic, incompressible test bytes (xorshift64*).
fn pattern(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// Asserts `e` is `NotFound` for exactly `key` of `store`, and says so in its message.
fn assert_not_found(store: &Store, key: &str, e: StorageError) {
    let want = store.key_url(key);
    assert!(
        matches!(&e, StorageError::NotFound { key } if *key == want),
        "expected NotFound for {want}, got {e:?}"
    );
    assert!(e.to_string().contains(&want), "{e}");
}

/// The cases, generic over the backend.
mod cases {
    use super::*;

    pub async fn put_get(fx: &Fixture) {
        let s = &fx.store;
        let data = pattern(1000, 1);
        s.put("obj.bin", data.clone()).await.unwrap();
        assert_eq!(s.get("obj.bin").await.unwrap(), data);
        assert_eq!(s.head("obj.bin").await.unwrap(), Some(1000));
        assert!(s.exists("obj.bin").await.unwrap());
        s.put("empty", Bytes::new()).await.unwrap();
        assert_eq!(s.get("empty").await.unwrap(), Bytes::new());
        assert_eq!(s.head("empty").await.unwrap(), Some(0));
        assert_eq!(s.list("").await.unwrap(), ["empty", "obj.bin"]);
    }

    pub async fn overwrite(fx: &Fixture) {
        let s = &fx.store;
        s.put("k", pattern(1000, 2)).await.unwrap();
        let b = pattern(37, 3);
        s.put("k", b.clone()).await.unwrap();
        assert_eq!(s.get("k").await.unwrap(), b);
        assert_eq!(s.head("k").await.unwrap(), Some(37));
        assert_eq!(s.list("").await.unwrap(), ["k"]);
    }

    pub async fn missing(fx: &Fixture) {
        let s = &fx.store;
        // Nothing has been written: even the store's directory may not exist.
        assert_eq!(s.list("").await.unwrap(), Vec::<String>::new());
        assert_not_found(s, "no/such", s.get("no/such").await.unwrap_err());
        assert_not_found(
            s,
            "no/such",
            s.get_range("no/such", 0..4).await.unwrap_err(),
        );
        assert_not_found(
            s,
            "no/such",
            s.get_range("no/such", 3..3).await.unwrap_err(),
        );
        let json = s.get_json::<serde_json::Value>("no/such.json").await;
        assert_not_found(s, "no/such.json", json.unwrap_err());
        assert_eq!(s.head("no/such").await.unwrap(), None);
        assert!(!s.exists("no/such").await.unwrap());
        s.delete("no/such").await.unwrap();
        s.put("present", Bytes::from_static(b"x")).await.unwrap();
        assert_not_found(s, "no/such", s.get("no/such").await.unwrap_err());
    }

    pub async fn range_reads(fx: &Fixture) {
        let s = &fx.store;
        let data = pattern(10_000, 4);
        s.put("r", data.clone()).await.unwrap();
        for (a, b) in [
            (0, 1),
            (10, 20),
            (9_990, 10_000),
            (0, 10_000),
            (5_000, 5_000),
        ] {
            let got = s.get_range("r", a..b).await.unwrap();
            assert_eq!(got, data.slice(a as usize..b as usize), "range {a}..{b}");
        }
        // Past the end, and reversed (start > end).
        for (a, b) in [(9_990, 10_001), (10_000, 10_010), (20, 10)] {
            let bad = std::ops::Range { start: a, end: b };
            let e = s.get_range("r", bad.clone()).await.unwrap_err();
            assert!(e.to_string().contains(&s.key_url("r")), "{bad:?}: {e}");
        }
    }

    pub async fn large_multipart(fx: &Fixture) {
        let s = &fx.store;
        // 12 MiB + a bit: two full parts and a short last part.
        let len = 12 * 1024 * 1024 + 12_345;
        assert!(len > MULTIPART_PART_SIZE);
        let data = pattern(len, 5);
        s.put_large("big.bin", data.clone()).await.unwrap();
        assert_eq!(s.head("big.bin").await.unwrap(), Some(len as u64));
        let got = s.get("big.bin").await.unwrap();
        assert!(got == data, "12 MiB object read back differs");
        let p = MULTIPART_PART_SIZE as u64;
        let across = s.get_range("big.bin", p - 100..p + 100).await.unwrap();
        assert_eq!(across, data.slice(p as usize - 100..p as usize + 100));
        // No parts or staging files are visible.
        assert_eq!(s.list("").await.unwrap(), ["big.bin"]);
        // Small objects go through put_large too.
        s.put_large("small.bin", pattern(100, 6)).await.unwrap();
        assert_eq!(s.get("small.bin").await.unwrap(), pattern(100, 6));
    }

    /// `put_parts`: an object made part by part (S3's 5 MiB minimum for all but the
    /// last), one part, or none; no parts or staging objects visible afterwards.
    pub async fn parts_upload(fx: &Fixture) {
        let s = &fx.store;
        let (a, b, c) = (
            pattern(5 * 1024 * 1024, 7),
            pattern(6 * 1024 * 1024 + 3, 8),
            pattern(777, 9),
        );
        let whole: Vec<u8> = [&a[..], &b[..], &c[..]].concat();
        s.put_parts("parts.bin", [a, b, c].into_iter())
            .await
            .unwrap();
        assert!(
            s.get("parts.bin").await.unwrap() == whole,
            "parts read back differ"
        );
        s.put_parts("one.bin", std::iter::once(pattern(100, 10)))
            .await
            .unwrap();
        assert_eq!(s.get("one.bin").await.unwrap(), pattern(100, 10));
        s.put_parts("none.bin", std::iter::empty()).await.unwrap();
        assert_eq!(s.get("none.bin").await.unwrap().len(), 0);
        assert_eq!(
            s.list("").await.unwrap(),
            ["none.bin", "one.bin", "parts.bin"]
        );
    }

    pub async fn concurrent_same_key(fx: &Fixture) {
        let s = &fx.store;
        let data = pattern(256 * 1024, 7);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (s, d) = (s.clone(), data.clone());
                tokio::spawn(async move { s.put("tasks/map/7.json", d).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert!(s.get("tasks/map/7.json").await.unwrap() == data);
        assert_eq!(s.list("").await.unwrap(), ["tasks/map/7.json"]);
    }

    pub async fn put_if_absent_race(fx: &Fixture) {
        let s = &fx.store;
        let payload = |i: usize| Bytes::from(format!("writer {i} ").repeat(1000));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move { (i, s.put_if_absent("marker", payload(i)).await) })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            let (i, r) = t.await.unwrap();
            if r.unwrap() {
                winners.push(i);
            }
        }
        assert_eq!(winners.len(), 1, "exactly one creator, got {winners:?}");
        let stored = s.get("marker").await.unwrap();
        assert_eq!(stored, payload(winners[0]), "the object is the winner's");
        // A later attempt neither succeeds nor changes the object.
        assert!(!s.put_if_absent("marker", payload(99)).await.unwrap());
        assert_eq!(s.get("marker").await.unwrap(), payload(winners[0]));
        assert_eq!(s.list("").await.unwrap(), ["marker"]);
    }

    pub async fn delete(fx: &Fixture) {
        let s = &fx.store;
        s.put("a", pattern(10, 8)).await.unwrap();
        s.put("b", pattern(10, 9)).await.unwrap();
        s.delete("a").await.unwrap();
        assert!(!s.exists("a").await.unwrap());
        assert_not_found(s, "a", s.get("a").await.unwrap_err());
        assert_eq!(s.list("").await.unwrap(), ["b"]);
        s.delete("a").await.unwrap();
        assert_eq!(s.get("b").await.unwrap(), pattern(10, 9));
    }

    pub async fn nested_prefixes(fx: &Fixture) {
        let s = &fx.store;
        let keys = [
            "z",
            "a/b/c.json",
            "ab",
            "a/e",
            "a/b/d",
            "cycles/000/partial/00001",
        ];
        for (i, k) in keys.iter().enumerate() {
            s.put(k, Bytes::from(k.to_string())).await.unwrap();
            assert_eq!(s.head(k).await.unwrap(), Some(k.len() as u64), "{i}");
        }
        let mut all: Vec<&str> = keys.to_vec();
        all.sort();
        assert_eq!(s.list("").await.unwrap(), all);
        assert_eq!(s.list("a").await.unwrap(), ["a/b/c.json", "a/b/d", "a/e"]);
        assert_eq!(s.list("a/").await.unwrap(), ["a/b/c.json", "a/b/d", "a/e"]);
        assert_eq!(s.list("a/b").await.unwrap(), ["a/b/c.json", "a/b/d"]);
        assert_eq!(
            s.list("cycles/000").await.unwrap(),
            ["cycles/000/partial/00001"]
        );
        assert_eq!(s.list("nope").await.unwrap(), Vec::<String>::new());
        for k in keys {
            assert_eq!(s.get(k).await.unwrap(), Bytes::from(k.to_string()));
        }
    }

    pub async fn child_stores(fx: &Fixture) {
        let s = &fx.store;
        let c = s.child("cycles/001");
        assert_eq!(c.url(), format!("{}/cycles/001", s.url()));
        assert_eq!(c.key_url("x"), s.key_url("cycles/001/x"));
        c.put("x", pattern(50, 10)).await.unwrap();
        c.child("partial")
            .put("00000", pattern(5, 11))
            .await
            .unwrap();
        assert_eq!(s.get("cycles/001/x").await.unwrap(), pattern(50, 10));
        assert_eq!(c.list("").await.unwrap(), ["partial/00000", "x"]);
        assert_eq!(
            s.list("").await.unwrap(),
            ["cycles/001/partial/00000", "cycles/001/x"]
        );
        assert_not_found(&c, "y", c.get("y").await.unwrap_err());
        // The URL alone is enough to find the same objects again (another process).
        let again = fx.reopen(c.url());
        assert_eq!(again.url(), c.url());
        assert_eq!(again.get("partial/00000").await.unwrap(), pattern(5, 11));
        let parent = fx.reopen(s.url());
        assert_eq!(
            parent.list("cycles").await.unwrap(),
            s.list("cycles").await.unwrap()
        );
        // The prefix and object store are what zarrs_object_store users need.
        let path = object_store::path::Path::from(format!("{}/x", c.prefix()));
        let raw = object_store::ObjectStoreExt::get(&c.object_store(), &path)
            .await
            .unwrap();
        assert_eq!(raw.bytes().await.unwrap(), pattern(50, 10));
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Manifest {
        stage: String,
        index: u32,
        seconds: f64,
        bytes_out: u64,
        outputs: Vec<String>,
        note: Option<String>,
    }

    pub async fn json(fx: &Fixture) {
        let s = &fx.store;
        let m = Manifest {
            stage: "invert-map".into(),
            index: 17,
            seconds: 0.1 + 0.2,
            bytes_out: 1 << 40,
            outputs: vec!["cycles/000/partial/00017".into()],
            note: Some("ünïcode ✓".into()),
        };
        s.put_json("tasks/invert-map/17.json", &m).await.unwrap();
        let back: Manifest = s.get_json("tasks/invert-map/17.json").await.unwrap();
        assert_eq!(back, m);
        let raw = s.get("tasks/invert-map/17.json").await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(v["index"], 17);

        s.put("bad.json", Bytes::from_static(b"{\"stage\": "))
            .await
            .unwrap();
        let e = s.get_json::<Manifest>("bad.json").await.unwrap_err();
        let want = s.key_url("bad.json");
        assert!(
            matches!(&e, StorageError::Corrupt { key, .. } if *key == want),
            "{e:?}"
        );
        assert!(
            e.to_string().contains(&want) && e.to_string().contains("JSON"),
            "{e}"
        );

        s.put_json("wrong.json", &serde_json::json!({"stage": 3}))
            .await
            .unwrap();
        let e = s.get_json::<Manifest>("wrong.json").await.unwrap_err();
        assert!(matches!(e, StorageError::Corrupt { .. }), "{e:?}");
    }

    pub async fn invalid_keys(fx: &Fixture) {
        let s = &fx.store;
        for k in ["", "/", "a//b", "../x", "a/./b", "a/..", "a\u{1}b"] {
            let e = s.put(k, Bytes::from_static(b"x")).await.unwrap_err();
            assert!(
                matches!(&e, StorageError::InvalidKey { key, .. } if key == k),
                "{k:?}: {e:?}"
            );
            assert!(e.to_string().contains(s.url()), "{e}");
            let e = s.get(k).await.unwrap_err();
            assert!(matches!(e, StorageError::InvalidKey { .. }), "{k:?}: {e:?}");
        }
        assert_eq!(s.list("").await.unwrap(), Vec::<String>::new());
    }
}

/// Instantiates every case for one backend (`fixtures::$backend`).
macro_rules! conformance {
    ($backend:ident: $($case:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(fx) = super::fixtures::$backend(stringify!($case)) else {
                        return;
                    };
                    super::cases::$case(&fx).await;
                }
            )*
        }
    };
    ($backend:ident) => {
        conformance!($backend: put_get, overwrite, missing, range_reads, large_multipart,
            parts_upload, concurrent_same_key, put_if_absent_race, delete, nested_prefixes, child_stores,
            json, invalid_keys);
    };
}

conformance!(memory);
conformance!(local);
conformance!(s3);

// ---- backend-specific behaviour and error mapping ----

#[test]
fn bad_urls_are_invalid_url_naming_the_url() {
    for url in [
        "ftp://x",
        "s3://",
        "s3:///prefix",
        "memory://",
        "gs://bucket/p",
        "",
        "file://otherhost/x",
        "s3://bucket/a/../b",
    ] {
        let e = Store::from_url(url).unwrap_err();
        assert!(
            matches!(&e, StorageError::InvalidUrl { url: u, .. } if u == url),
            "{url:?}: {e:?}"
        );
        assert!(e.to_string().contains(&format!("{url:?}")), "{e}");
    }
    let opts = StoreOptions {
        s3: S3Options {
            ignore_env: true,
            endpoint: Some("127.0.0.1:9000".into()),
            ..S3Options::default()
        },
        ..StoreOptions::default()
    };
    let e = Store::from_url_with("s3://bucket/p", &opts).unwrap_err();
    assert!(matches!(e, StorageError::InvalidUrl { .. }), "{e:?}");
    assert!(e.to_string().contains("endpoint"), "{e}");
}

#[tokio::test]
async fn memory_stores_of_one_name_share_objects() {
    let name = unique("shared");
    let a = Store::from_url(&format!("memory://{name}")).unwrap();
    let b = Store::from_url(&format!("memory://{name}/")).unwrap();
    let other = Store::from_url(&format!("memory://{name}-other")).unwrap();
    a.put("k", Bytes::from_static(b"v")).await.unwrap();
    assert_eq!(b.get("k").await.unwrap(), Bytes::from_static(b"v"));
    assert!(!other.exists("k").await.unwrap());
    assert_eq!(a.url(), format!("memory://{name}"));
}

#[tokio::test]
async fn local_paths_and_file_urls_open_the_same_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out dir");
    let plain = Store::from_url(dir.to_str().unwrap()).unwrap();
    assert!(plain.url().starts_with("file:///"), "{}", plain.url());
    plain
        .put("a/b.txt", Bytes::from_static(b"hi"))
        .await
        .unwrap();
    // The object is an ordinary file at the expected place.
    assert_eq!(std::fs::read(dir.join("a/b.txt")).unwrap(), b"hi");
    let by_url = Store::from_url(plain.url()).unwrap();
    assert_eq!(
        by_url.get("a/b.txt").await.unwrap(),
        Bytes::from_static(b"hi")
    );
    let with_dots = Store::from_url(&format!("{}/a/../a/./", dir.display())).unwrap();
    assert_eq!(
        with_dots.get("b.txt").await.unwrap(),
        Bytes::from_static(b"hi")
    );
    // No temporary files are left next to the object.
    let names: Vec<_> = std::fs::read_dir(dir.join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["b.txt"]);
}

#[tokio::test]
async fn local_write_refused_names_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    // A regular file where the store's directory should be: every write fails.
    std::fs::write(tmp.path().join("blocker"), b"").unwrap();
    let s = Store::from_url(tmp.path().join("blocker/out").to_str().unwrap()).unwrap();
    let e = s
        .put("k.json", Bytes::from_static(b"{}"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StorageError::Backend { .. } | StorageError::PermissionDenied { .. }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains(&s.key_url("k.json")), "{e}");
    let e = s
        .put_if_absent("k.json", Bytes::from_static(b"{}"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains(&s.key_url("k.json")), "{e}");

    // A read-only directory (only enforced when not running as root).
    use std::os::unix::fs::PermissionsExt;
    let ro = tmp.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    let enforced = std::fs::write(ro.join("probe"), b"").is_err();
    let s = Store::from_url(ro.to_str().unwrap()).unwrap();
    let r = s.put("k", Bytes::from_static(b"x")).await;
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    if enforced {
        let e = r.unwrap_err();
        assert!(
            matches!(&e, StorageError::PermissionDenied { key, .. } if *key == s.key_url("k")),
            "{e:?}"
        );
    } else {
        eprintln!(
            "running as root: directory permissions are not enforced, read-only case not checked"
        );
    }
}

#[tokio::test]
async fn unreachable_s3_endpoint_fails_quickly_naming_the_key() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let opts = StoreOptions {
        s3: S3Options {
            ignore_env: true,
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            region: Some("us-east-1".into()),
            access_key_id: Some("nobody".into()),
            secret_access_key: Some("nothing".into()),
            ..S3Options::default()
        },
        connect_timeout: Some(Duration::from_secs(1)),
        request_timeout: Some(Duration::from_secs(5)),
        max_retries: 1,
        retry_timeout: Duration::from_secs(3),
    };
    let s = Store::from_url_with("s3://bucket/job", &opts).unwrap();
    let bound = Duration::from_secs(60);
    let check = |what: &str, e: StorageError| {
        let want = s.key_url("plan.json");
        let want = if what == "list" { s.key_url("") } else { want };
        assert!(
            matches!(&e, StorageError::Unreachable { url, .. } if *url == want),
            "{what}: {e:?}"
        );
        assert!(e.to_string().contains("unreachable"), "{what}: {e}");
        assert!(!e.to_string().contains('\n'), "one line: {e}");
    };
    let get = tokio::time::timeout(bound, s.get("plan.json")).await;
    check("get", get.expect("get hung").unwrap_err());
    let put = tokio::time::timeout(bound, s.put("plan.json", Bytes::from_static(b"{}"))).await;
    check("put", put.expect("put hung").unwrap_err());
    let head = tokio::time::timeout(bound, s.head("plan.json")).await;
    check("head", head.expect("head hung").unwrap_err());
    let list = tokio::time::timeout(bound, s.list("")).await;
    check("list", list.expect("list hung").unwrap_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_read_only_identity_is_refused_writes() {
    let Some(server) = seaweedfs::server() else {
        return;
    };
    let prefix = unique("read-only");
    let rw = server.store(&prefix);
    rw.put("data", Bytes::from_static(b"readable"))
        .await
        .unwrap();
    let Some(opts) = server.read_only_options() else {
        eprintln!("no read-only identity for this S3 server: case not checked");
        return;
    };
    let ro = Store::from_url_with(&server.url(&prefix), &opts).unwrap();
    assert_eq!(
        ro.get("data").await.unwrap(),
        Bytes::from_static(b"readable")
    );
    assert_eq!(ro.list("").await.unwrap(), ["data"]);
    let denied = |what: &str, key: &str, e: StorageError| {
        let want = ro.key_url(key);
        assert!(
            matches!(&e, StorageError::PermissionDenied { key, .. } if *key == want),
            "{what}: {e:?}"
        );
        assert!(e.to_string().contains(&want), "{e}");
        assert!(!e.to_string().contains('\n'), "one line: {e}");
    };
    denied(
        "put",
        "out.json",
        ro.put("out.json", Bytes::from_static(b"{}"))
            .await
            .unwrap_err(),
    );
    denied(
        "put_if_absent",
        "marker",
        ro.put_if_absent("marker", Bytes::from_static(b"1"))
            .await
            .unwrap_err(),
    );
    let big = pattern(MULTIPART_PART_SIZE + 1000, 12);
    denied(
        "put_large",
        "big",
        ro.put_large("big", big).await.unwrap_err(),
    );
    denied("delete", "data", ro.delete("data").await.unwrap_err());
    assert_eq!(rw.list("").await.unwrap(), ["data"]);
}

#[tokio::test]
async fn s3_wrong_secret_is_permission_denied() {
    let Some(server) = seaweedfs::server() else {
        return;
    };
    let url = server.url(&unique("wrong-secret"));
    let s = Store::from_url_with(&url, &server.wrong_secret_options()).unwrap();
    let e = s.get("x").await.unwrap_err();
    assert!(matches!(e, StorageError::PermissionDenied { .. }), "{e:?}");
    assert!(e.to_string().contains(&s.key_url("x")), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_without_conditional_put_falls_back_to_check_then_write() {
    let Some(server) = seaweedfs::server() else {
        return;
    };
    let mut opts = server.options();
    opts.s3
        .config
        .push(("aws_conditional_put".into(), "disabled".into()));
    let url = server.url(&unique("no-cond-put"));
    let s = Store::from_url_with(&url, &opts).unwrap();
    assert!(
        s.put_if_absent("m", Bytes::from_static(b"first"))
            .await
            .unwrap()
    );
    assert!(
        !s.put_if_absent("m", Bytes::from_static(b"second"))
            .await
            .unwrap()
    );
    assert_eq!(s.get("m").await.unwrap(), Bytes::from_static(b"first"));
}

#[test]
fn block_on_runs_storage_futures_from_sync_code() {
    let s = Store::from_url(&format!("memory://{}", unique("block-on"))).unwrap();
    let got = Store::block_on(async {
        s.put("k", Bytes::from_static(b"v")).await?;
        s.get("k").await
    })
    .unwrap();
    assert_eq!(got, Bytes::from_static(b"v"));
    // Inside a runtime it refuses instead of panicking.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let inner = rt.block_on(async { Store::block_on(async { s.get("k").await }) });
    assert!(
        inner
            .unwrap_err()
            .to_string()
            .contains("inside an async runtime")
    );
}
