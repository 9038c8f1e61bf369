//! Long-lived child processes of the tests (etcd, the Kubernetes components, the
//! operator), each with its log file and a watchdog: a `sh` that holds the read end of a
//! pipe from this process and, when the test process exits however it exits (the kernel
//! closes the pipe), stops the child (SIGTERM, SIGKILL after 5 s). [`Proc::stop`] and
//! `Drop` stop it earlier, in order, and the watchdog then has nothing left to do.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running child process.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Option<Child>,
    watchdog: Option<(Child, ChildStdin)>,
}

const WATCHDOG: &str = r#"read _ignored
kill -TERM "$1" 2>/dev/null
i=0
while kill -0 "$1" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i+1)); done
kill -KILL "$1" 2>/dev/null"#;

impl Proc {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Self, String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let file2 = file.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null()).stdout(file).stderr(file2);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({:?}): {e}", cmd.get_program()))?;
        let watchdog = Command::new("sh")
            .args(["-c", WATCHDOG, "aperture-test-watchdog"])
            .arg(child.id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut watchdog = match watchdog {
            Ok(w) => w,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("cannot start the watchdog of {name}: {e}"));
            }
        };
        let stdin = watchdog.stdin.take().ok_or("watchdog stdin")?;
        Ok(Self {
            name: name.to_string(),
            log: log.to_path_buf(),
            child: Some(child),
            watchdog: Some((watchdog, stdin)),
        })
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Sends `signal` (e.g. `libc::SIGKILL`) without waiting.
    pub fn signal(&self, signal: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on the pid of a child we have not reaped yet (it cannot
            // have been reused).
            unsafe {
                libc::kill(c.id() as i32, signal);
            }
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`; waits for it.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let status = match child.try_wait() {
            Ok(Some(s)) => Some(s),
            _ => {
                // SAFETY: as in `signal`: the child is not reaped yet.
                unsafe {
                    libc::kill(child.id() as i32, libc::SIGTERM);
                }
                let deadline = Instant::now() + grace;
                loop {
                    match child.try_wait() {
                        Ok(Some(s)) => break Some(s),
                        Ok(None) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(20))
                        }
                        _ => {
                            let _ = child.kill();
                            break child.wait().ok();
                        }
                    }
                }
            }
        };
        if let Some((mut w, stdin)) = self.watchdog.take() {
            // Its child is gone: stop the watchdog without letting it signal the
            // (reaped, so reusable) pid.
            let _ = w.kill();
            let _ = w.wait();
            drop(stdin);
        }
        status
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        log_tail(&self.log, n)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// The last `n` lines of a file (empty if unreadable).
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A free TCP port on 127.0.0.1 (free when asked; a failed start is retried by callers).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Polls `ready` every 100 ms until it returns `Ok(true)`, the process exits, or
/// `deadline` passes (a bounded poll, not a sleep: it returns as soon as it can).
pub fn wait_until(
    what: &str,
    proc: &mut Proc,
    deadline: Duration,
    mut ready: impl FnMut() -> Result<bool, String>,
) -> Result<(), String> {
    let end = Instant::now() + deadline;
    let mut last = String::new();
    loop {
        if let Some(status) = proc.exited() {
            return Err(format!(
                "{what}: {} exited during startup ({status}); its log ends:\n{}",
                proc.name,
                proc.log_tail(40)
            ));
        }
        match ready() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last = e,
        }
        if Instant::now() > end {
            return Err(format!(
                "{what}: not ready after {deadline:?} (last error: {last}); {} log ends:\n{}",
                proc.name,
                proc.log_tail(40)
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET path` over plain HTTP/1.0 on 127.0.0.1:`port`: (status code, body).
pub fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    use std::io::Read;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {:?}", &text[..text.len().min(80)]))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// Removes a directory when the test process exits, once the processes registered with
/// it have gone (their watchdogs stop them): a `sh` reading pids from a pipe until it
/// closes.
#[derive(Debug)]
pub struct DirReaper {
    child: Child,
    stdin: Option<ChildStdin>,
}

const REAPER: &str = r#"pids=""
while read -r p; do pids="$pids $p"; done
i=0
while [ "$i" -lt 150 ]; do
  alive=0
  for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
  [ "$alive" = 0 ] && break
  sleep 0.1; i=$((i+1))
done
rm -rf "$1""#;

impl DirReaper {
    pub fn new(dir: &Path) -> Result<Self, String> {
        let mut child = Command::new("sh")
            .args(["-c", REAPER, "aperture-test-reaper"])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the directory reaper: {e}"))?;
        let stdin = child.stdin.take();
        Ok(Self { child, stdin })
    }

    /// Waits for `pid` to be gone before removing the directory.
    pub fn register(&mut self, pid: u32) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{pid}");
        }
    }
}

impl Drop for DirReaper {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}
