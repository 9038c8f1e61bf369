//! The axum server over real TCP: `/healthz`, `/readyz` before and after ready (and not
//! ready again, with the reason, when leader election is refused),
//! `/metrics` with its content type, and graceful shutdown.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aperture_operator::leader::{LeaderHandle, LeaseProblem};
use aperture_operator::metrics::Metrics;
use aperture_operator::server::{OPENMETRICS_CONTENT_TYPE, Readiness, ServerState, serve};

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// GET `path` with a plain blocking socket (`Connection: close`, so the server ends
/// the response by closing). The read timeout only bounds a broken server.
async fn get(address: SocketAddr, path: &str) -> Reply {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).expect("read the response");
        let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
        let mut lines = head.lines();
        let status_line = lines.next().expect("status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Reply {
            status,
            headers,
            body: body.to_owned(),
        }
    })
    .await
    .expect("client task")
}

#[tokio::test]
async fn probes_metrics_and_graceful_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let metrics = Arc::new(Metrics::new());
    let leader = LeaderHandle::new();
    let readiness = Readiness::new(leader.clone());
    let state = ServerState {
        metrics: metrics.clone(),
        readiness: readiness.clone(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, state, async {
        let _ = stopped.await;
    }));

    let health = get(address, "/healthz").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body, "ok");

    let not_ready = get(address, "/readyz").await;
    assert_eq!(not_ready.status, 503);
    assert!(
        not_ready.body.contains("CRD"),
        "reason given: {}",
        not_ready.body
    );

    readiness.controller_running();
    let now_ready = get(address, "/readyz").await;
    assert_eq!(now_ready.status, 200);

    // A refused Lease makes it not ready again, saying why.
    leader.set_problem(Some(LeaseProblem {
        message: "Lease ns/aperture-operator: get failed: 403 Forbidden".into(),
        forbidden: true,
    }));
    let lease = get(address, "/readyz").await;
    assert_eq!(lease.status, 503);
    assert!(
        lease.body.contains("get failed: 403 Forbidden"),
        "{}",
        lease.body
    );
    leader.set_problem(None);
    assert_eq!(get(address, "/readyz").await.status, 200);

    metrics.reconciled();
    metrics.reconciled();
    metrics.set_job_phase("ns/j", "Running");
    let page = get(address, "/metrics").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some(OPENMETRICS_CONTENT_TYPE));
    assert!(
        page.body
            .contains("\naperture_operator_reconciles_total 2\n"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("\naperture_operator_jobs{phase=\"Running\"} 1\n"),
        "{}",
        page.body
    );
    assert!(page.body.ends_with("# EOF\n"));

    assert_eq!(get(address, "/nothing-here").await.status, 404);

    stop.send(()).expect("server is listening for shutdown");
    // The bound only turns a hang into a failure.
    let ended = tokio::time::timeout(Duration::from_secs(30), server).await;
    ended
        .expect("the server stops after shutdown")
        .expect("server task")
        .expect("serve returns Ok");
    assert!(
        std::net::TcpStream::connect(address).is_err(),
        "the listener is closed after shutdown"
    );
}
