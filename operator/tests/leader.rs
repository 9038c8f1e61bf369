//! Leader election: the pure `decide` function case by case, and the elector's
//! requests against a mocked API server (tower-test, controller-rs style).

use std::time::Duration;

use aperture_operator::leader::{Decision, LeaderElector, LeaderError, LeaderHandle, decide};
use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::client::Body;
use tower_test::mock::{self, Handle, SendResponse};

const NS: &str = "aperture-system";
const NAME: &str = "aperture-operator";
const ME: &str = "operator-0";
const OTHER: &str = "operator-1";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/aperture-system/leases";
const LEASE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/aperture-system/leases/aperture-operator";
const DURATION: Duration = Duration::from_secs(15);

/// The pinned clock of every test.
fn now() -> Timestamp {
    Timestamp::from_second(1_780_000_000).expect("valid timestamp")
}

fn ago(seconds: i64) -> Timestamp {
    now() - SignedDuration::from_secs(seconds)
}

/// A Lease as the API server would return it.
fn lease(
    holder: Option<&str>,
    renewed: Option<Timestamp>,
    duration: Option<i32>,
    transitions: i32,
) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(NS.into()),
            resource_version: Some("4711".into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: holder.map(str::to_owned),
            acquire_time: renewed.map(|t| MicroTime(t - SignedDuration::from_secs(600))),
            renew_time: renewed.map(MicroTime),
            lease_duration_seconds: duration,
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }),
    }
}

// ---- decide ---------------------------------------------------------------------

#[test]
fn decide_covers_every_case() {
    let d = |l: Option<&Lease>| decide(l, ME, now(), DURATION);
    assert_eq!(d(None), Decision::Create);
    assert_eq!(
        d(Some(&lease(Some(ME), Some(ago(100)), Some(15), 3))),
        Decision::Renew,
        "ours, even expired"
    );
    assert_eq!(
        d(Some(&lease(None, Some(ago(1)), Some(15), 3))),
        Decision::TakeOver { previous: None }
    );
    assert_eq!(
        d(Some(&lease(Some(""), Some(ago(1)), Some(15), 3))),
        Decision::TakeOver { previous: None }
    );
    let no_spec = Lease {
        spec: None,
        ..lease(None, None, None, 0)
    };
    assert_eq!(d(Some(&no_spec)), Decision::TakeOver { previous: None });
    assert_eq!(
        d(Some(&lease(Some(OTHER), Some(ago(5)), Some(15), 3))),
        Decision::Follow {
            holder: OTHER.into(),
            expires: Some(now() + SignedDuration::from_secs(10)),
        }
    );
    assert_eq!(
        d(Some(&lease(Some(OTHER), None, Some(15), 3))),
        Decision::TakeOver {
            previous: Some(OTHER.into())
        },
        "a holder that never renewed holds nothing"
    );
}

#[test]
fn decide_expiry_boundary_uses_the_holders_duration() {
    let other = |renewed: Timestamp, duration: Option<i32>| {
        decide(
            Some(&lease(Some(OTHER), Some(renewed), duration, 0)),
            ME,
            now(),
            DURATION,
        )
    };
    let taken = Decision::TakeOver {
        previous: Some(OTHER.into()),
    };
    // renewTime + 15 s == now: expired exactly at the boundary.
    assert_eq!(other(ago(15), Some(15)), taken);
    assert_eq!(
        other(ago(14), Some(15)),
        Decision::Follow {
            holder: OTHER.into(),
            expires: Some(now() + SignedDuration::from_secs(1)),
        }
    );
    // The holder's own (longer) duration wins over ours.
    assert!(matches!(other(ago(50), Some(60)), Decision::Follow { .. }));
    assert_eq!(other(ago(61), Some(60)), taken);
    // Missing or nonsensical durations fall back to ours (15 s).
    assert_eq!(other(ago(16), None), taken);
    assert_eq!(other(ago(16), Some(0)), taken);
    assert_eq!(other(ago(16), Some(-5)), taken);
    assert!(matches!(other(ago(14), None), Decision::Follow { .. }));
    // A renewal in the future (clock skew) is followed, not taken over.
    assert!(matches!(
        other(now() + SignedDuration::from_secs(3), Some(15)),
        Decision::Follow { .. }
    ));
    // An expiry beyond the representable range never comes.
    assert_eq!(
        other(Timestamp::MAX, Some(15)),
        Decision::Follow {
            holder: OTHER.into(),
            expires: None,
        }
    );
}

#[test]
fn handles() {
    assert!(LeaderHandle::always().is_leader());
    assert!(!LeaderHandle::new().is_leader());
}

// ---- the elector against a mocked API server ------------------------------------

type ApiHandle = Handle<Request<Body>, Response<Body>>;

fn elector() -> (LeaderElector, ApiHandle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let elector = LeaderElector::new(client, NS, NAME, ME, DURATION).with_clock(now);
    (elector, handle)
}

/// Take the next request, check its method and path, and return its JSON body
/// (`Null` when empty) with the responder.
async fn expect(
    handle: &mut ApiHandle,
    method: Method,
    path: &str,
) -> (serde_json::Value, SendResponse<Response<Body>>) {
    let (request, send) = handle
        .next_request()
        .await
        .expect("the elector sent no request");
    assert_eq!(request.method(), method, "method of {}", request.uri());
    assert_eq!(request.uri().path(), path);
    let bytes = request
        .into_body()
        .collect_bytes()
        .await
        .expect("request body");
    let body = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("request body is JSON")
    };
    (body, send)
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(serde_json::to_vec(value).expect("serialisable")))
        .expect("response")
}

/// A `Status` failure as the API server sends it.
fn failure(code: u16, reason: &str) -> Response<Body> {
    let status = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": format!("{reason} (test)"), "reason": reason, "code": code,
    });
    json(StatusCode::from_u16(code).expect("status code"), &status)
}

fn spec_of(body: &serde_json::Value) -> LeaseSpec {
    let lease: Lease = serde_json::from_value(body.clone()).expect("the body is a Lease");
    lease.spec.expect("the Lease has a spec")
}

#[tokio::test]
async fn no_lease_creates_it_and_leads() {
    let (elector, mut api) = elector();
    let handle = elector.handle();
    let server = tokio::spawn(async move {
        let (_, send) = expect(&mut api, Method::GET, LEASE).await;
        send.send_response(failure(404, "NotFound"));
        let (body, send) = expect(&mut api, Method::POST, LEASES).await;
        assert_eq!(body["metadata"]["name"], NAME);
        let spec = spec_of(&body);
        assert_eq!(spec.holder_identity.as_deref(), Some(ME));
        assert_eq!(spec.acquire_time, Some(MicroTime(now())));
        assert_eq!(spec.renew_time, Some(MicroTime(now())));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.lease_transitions, Some(0));
        send.send_response(json(StatusCode::CREATED, &body));
    });
    assert!(
        elector
            .try_acquire_or_renew()
            .await
            .expect("round succeeds")
    );
    assert!(handle.is_leader());
    server.await.expect("API server checks pass");
}

#[tokio::test]
async fn lease_held_by_another_is_left_alone() {
    let (elector, mut api) = elector();
    let handle = elector.handle();
    let server = tokio::spawn(async move {
        let (_, send) = expect(&mut api, Method::GET, LEASE).await;
        send.send_response(json(
            StatusCode::OK,
            &lease(Some(OTHER), Some(ago(3)), Some(15), 2),
        ));
        // No write may follow: the next request must not come before the elector is
        // dropped, which ends the stream.
        assert!(
            api.next_request().await.is_none(),
            "a follower must not write"
        );
    });
    assert!(
        !elector
            .try_acquire_or_renew()
            .await
            .expect("round succeeds")
    );
    assert!(!handle.is_leader());
    drop(elector);
    server.await.expect("API server checks pass");
}

#[tokio::test]
async fn expired_lease_is_taken_over() {
    let (elector, mut api) = elector();
    let handle = elector.handle();
    let server = tokio::spawn(async move {
        let (_, send) = expect(&mut api, Method::GET, LEASE).await;
        send.send_response(json(
            StatusCode::OK,
            &lease(Some(OTHER), Some(ago(40)), Some(15), 2),
        ));
        let (body, send) = expect(&mut api, Method::PUT, LEASE).await;
        assert_eq!(
            body["metadata"]["resourceVersion"], "4711",
            "optimistic concurrency"
        );
        let spec = spec_of(&body);
        assert_eq!(spec.holder_identity.as_deref(), Some(ME));
        assert_eq!(spec.lease_transitions, Some(3));
        assert_eq!(spec.acquire_time, Some(MicroTime(now())));
        assert_eq!(spec.renew_time, Some(MicroTime(now())));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        send.send_response(json(StatusCode::OK, &body));
    });
    assert!(
        elector
            .try_acquire_or_renew()
            .await
            .expect("round succeeds")
    );
    assert!(handle.is_leader());
    server.await.expect("API server checks pass");
}

#[tokio::test]
async fn our_lease_is_renewed() {
    let (elector, mut api) = elector();
    let handle = elector.handle();
    let ours = lease(Some(ME), Some(ago(5)), Some(15), 7);
    let acquired = ours.spec.as_ref().and_then(|s| s.acquire_time.clone());
    let server = tokio::spawn(async move {
        let (_, send) = expect(&mut api, Method::GET, LEASE).await;
        send.send_response(json(StatusCode::OK, &ours));
        let (body, send) = expect(&mut api, Method::PUT, LEASE).await;
        assert_eq!(
            body["metadata"]["resourceVersion"], "4711",
            "optimistic concurrency"
        );
        let spec = spec_of(&body);
        assert_eq!(spec.holder_identity.as_deref(), Some(ME));
        assert_eq!(spec.renew_time, Some(MicroTime(now())), "renewed now");
        assert_eq!(
            spec.acquire_time, acquired,
            "a renewal keeps the acquire time"
        );
        assert_eq!(
            spec.lease_transitions,
            Some(7),
            "a renewal is no transition"
        );
        send.send_response(json(StatusCode::OK, &body));
    });
    assert!(
        elector
            .try_acquire_or_renew()
            .await
            .expect("round succeeds")
    );
    assert!(handle.is_leader());
    server.await.expect("API server checks pass");
}

#[tokio::test]
async fn conflict_on_replace_steps_down() {
    let (elector, mut api) = elector();
    let handle = elector.handle();
    let server = tokio::spawn(async move {
        // Round 1: renew succeeds, we lead.
        let (_, send) = expect(&mut api, Method::GET, LEASE).await;
        send.send_response(json(
            StatusCode::OK,
            &lease(Some(ME), Some(ago(5)), Some(15), 1),
        ));
        let (body, send) = expect(&mut api, Method::PUT, LEASE).await;
        send.send_response(json(StatusCode::OK, &body));
        // Round 2: someone else wrote in between; the replace conflicts.
        let (_, send) = expect(&mut api, Method::GET, LEASE).await;
        send.send_response(json(
            StatusCode::OK,
            &lease(Some(ME), Some(ago(5)), Some(15), 1),
        ));
        let (_, send) = expect(&mut api, Method::PUT, LEASE).await;
        send.send_response(failure(409, "Conflict"));
    });
    assert!(elector.try_acquire_or_renew().await.expect("round 1"));
    assert!(handle.is_leader());
    assert!(
        !elector
            .try_acquire_or_renew()
            .await
            .expect("a conflict is a lost round, not an error")
    );
    assert!(!handle.is_leader(), "stepped down");
    server.await.expect("API server checks pass");
}

#[tokio::test]
async fn create_race_lost_is_not_leader() {
    let (elector, mut api) = elector();
    let server = tokio::spawn(async move {
        let (_, send) = expect(&mut api, Method::GET, LEASE).await;
        send.send_response(failure(404, "NotFound"));
        let (_, send) = expect(&mut api, Method::POST, LEASES).await;
        send.send_response(failure(409, "AlreadyExists"));
    });
    assert!(
        !elector
            .try_acquire_or_renew()
            .await
            .expect("a lost create race is no error")
    );
    assert!(!elector.handle().is_leader());
    server.await.expect("API server checks pass");
}

#[tokio::test]
async fn api_errors_fail_safe() {
    let (elector, mut api) = elector();
    let handle = elector.handle();
    let server = tokio::spawn(async move {
        // Round 1: we take the free lease.
        let (_, send) = expect(&mut api, Method::GET, LEASE).await;
        send.send_response(json(StatusCode::OK, &lease(None, None, None, 0)));
        let (body, send) = expect(&mut api, Method::PUT, LEASE).await;
        send.send_response(json(StatusCode::OK, &body));
        // Round 2: the API server refuses the read.
        let (_, send) = expect(&mut api, Method::GET, LEASE).await;
        send.send_response(failure(403, "Forbidden"));
        // Round 3: the renewal write fails on the server.
        let (_, send) = expect(&mut api, Method::GET, LEASE).await;
        send.send_response(json(
            StatusCode::OK,
            &lease(Some(ME), Some(ago(1)), Some(15), 1),
        ));
        let (_, send) = expect(&mut api, Method::PUT, LEASE).await;
        send.send_response(failure(500, "InternalError"));
    });
    assert!(elector.try_acquire_or_renew().await.expect("round 1"));
    assert!(handle.is_leader());
    let error = elector
        .try_acquire_or_renew()
        .await
        .expect_err("forbidden read");
    assert!(
        matches!(error, LeaderError::Api { verb: "get", .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("Lease aperture-system/aperture-operator"),
        "{error}"
    );
    assert!(!handle.is_leader(), "an error means not leader");
    // Our lease again, but the renewal write fails.
    let error = elector
        .try_acquire_or_renew()
        .await
        .expect_err("failing write");
    assert!(
        matches!(
            error,
            LeaderError::Api {
                verb: "replace",
                ..
            }
        ),
        "{error}"
    );
    assert!(!handle.is_leader());
    server.await.expect("API server checks pass");
}

#[tokio::test]
async fn release_clears_the_holder() {
    let (elector, mut api) = elector();
    let handle = elector.handle();
    let server = tokio::spawn(async move {
        let (_, send) = expect(&mut api, Method::GET, LEASE).await;
        send.send_response(json(
            StatusCode::OK,
            &lease(Some(ME), Some(ago(2)), Some(15), 4),
        ));
        let (body, send) = expect(&mut api, Method::PUT, LEASE).await;
        send.send_response(json(StatusCode::OK, &body));
        // release
        let (_, send) = expect(&mut api, Method::GET, LEASE).await;
        send.send_response(json(
            StatusCode::OK,
            &lease(Some(ME), Some(now()), Some(15), 4),
        ));
        let (body, send) = expect(&mut api, Method::PUT, LEASE).await;
        assert_eq!(
            body["metadata"]["resourceVersion"], "4711",
            "optimistic concurrency"
        );
        let spec = spec_of(&body);
        assert!(
            spec.holder_identity.as_deref().unwrap_or("").is_empty(),
            "holder cleared: {spec:?}"
        );
        assert_eq!(spec.lease_transitions, Some(4));
        send.send_response(json(StatusCode::OK, &body));
        // A standby now sees a free lease.
        let released: Lease = serde_json::from_value(body).expect("a Lease");
        assert_eq!(
            decide(Some(&released), OTHER, now(), DURATION),
            Decision::TakeOver { previous: None }
        );
    });
    assert!(elector.try_acquire_or_renew().await.expect("round"));
    assert!(handle.is_leader());
    elector.release().await.expect("release");
    assert!(!handle.is_leader());
    server.await.expect("API server checks pass");
}

#[tokio::test]
async fn release_leaves_another_holders_lease_alone() {
    let (elector, mut api) = elector();
    let server = tokio::spawn(async move {
        let (_, send) = expect(&mut api, Method::GET, LEASE).await;
        send.send_response(json(
            StatusCode::OK,
            &lease(Some(OTHER), Some(ago(2)), Some(15), 4),
        ));
        assert!(
            api.next_request().await.is_none(),
            "no write to another holder's lease"
        );
    });
    elector.release().await.expect("release");
    drop(elector);
    server.await.expect("API server checks pass");
}

#[tokio::test]
async fn run_leads_until_shutdown_then_releases() {
    // A long lease, so the second round (20 minutes later) cannot come first.
    let (service, mut api) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let elector =
        LeaderElector::new(client, NS, NAME, ME, Duration::from_secs(3600)).with_clock(now);
    let handle = elector.handle();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let probe = handle.clone();
    let server = tokio::spawn(async move {
        let (_, send) = expect(&mut api, Method::GET, LEASE).await;
        send.send_response(failure(404, "NotFound"));
        let (body, send) = expect(&mut api, Method::POST, LEASES).await;
        assert_eq!(spec_of(&body).lease_duration_seconds, Some(3600));
        let created = body.clone();
        send.send_response(json(StatusCode::CREATED, &body));
        stop.send(()).expect("run is listening");
        // release: GET, then the holder is cleared.
        let (_, send) = expect(&mut api, Method::GET, LEASE).await;
        assert!(!probe.is_leader(), "steps down before releasing");
        let mut stored: Lease = serde_json::from_value(created).expect("a Lease");
        stored.metadata.resource_version = Some("9".into());
        send.send_response(json(StatusCode::OK, &stored));
        let (body, send) = expect(&mut api, Method::PUT, LEASE).await;
        assert_eq!(body["metadata"]["resourceVersion"], "9");
        assert!(
            spec_of(&body)
                .holder_identity
                .as_deref()
                .unwrap_or("")
                .is_empty()
        );
        send.send_response(json(StatusCode::OK, &body));
    });
    elector
        .run(async {
            let _ = stopped.await;
        })
        .await;
    assert!(!handle.is_leader());
    server.await.expect("API server checks pass");
}
