//! Leader election on a `coordination.k8s.io/v1` Lease, so two operator replicas
//! never both act.
//!
//! The protocol is client-go's `tools/leaderelection` with a `LeaseLock`
//! (<https://pkg.go.dev/k8s.io/client-go/tools/leaderelection>; the Lease object is
//! described at <https://kubernetes.io/docs/concepts/architecture/leases/>): every
//! round GETs the Lease and then
//! - creates it holding it when it does not exist;
//! - renews it (new `renewTime`) when we hold it;
//! - leaves it alone when another identity holds it and `renewTime +
//!   leaseDurationSeconds` is still in the future;
//! - takes it over (`leaseTransitions + 1`) when it is free or has expired.
//!
//! Every write is a create or a replace carrying the `resourceVersion` that was read,
//! so the API server's optimistic concurrency decides races: a `409 Conflict` means
//! another replica wrote first and we do not lead this round. Any other API error also
//! means "not leader" for the round (fail safe). The decision itself is the pure
//! [`decide`] function; [`LeaderElector`] only does the I/O.
//!
//! Expiry compares the holder's `renewTime` with our clock, so it assumes the
//! replicas' clocks agree to well within a lease duration (as NTP-synced nodes do).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;
use tokio::time::MissedTickBehavior;

/// Whether this replica currently leads, and why leader election fails if it does;
/// cheap to clone and to read from the reconciler and the readiness probe.
#[derive(Clone, Debug)]
pub struct LeaderHandle {
    leading: Arc<AtomicBool>,
    problem: Arc<Mutex<Option<LeaseProblem>>>,
}

/// Why the last leader-election round failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseProblem {
    /// The error, naming the Lease, the verb and the API server's answer.
    pub message: String,
    /// The API server refused the request (`403 Forbidden`): the ServiceAccount lacks a
    /// Lease permission, so no round can succeed until someone grants it.
    pub forbidden: bool,
}

impl std::fmt::Display for LeaseProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<&LeaderError> for LeaseProblem {
    fn from(e: &LeaderError) -> Self {
        Self {
            message: e.to_string(),
            forbidden: e.is_forbidden(),
        }
    }
}

impl LeaderHandle {
    /// A handle that starts as "not leader"; a [`LeaderElector`] sets it.
    pub fn new() -> Self {
        Self {
            leading: Arc::new(AtomicBool::new(false)),
            problem: Arc::new(Mutex::new(None)),
        }
    }

    /// A handle that always leads: for a single replica with election turned off.
    pub fn always() -> Self {
        let h = Self::new();
        h.leading.store(true, Ordering::SeqCst);
        h
    }

    /// Whether this replica may act now.
    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// Why the last round failed; `None` after a round that worked (leading or
    /// following another replica).
    pub fn problem(&self) -> Option<LeaseProblem> {
        self.problem.lock().ok().and_then(|p| p.clone())
    }

    /// Record the outcome of a round (`None`: it worked).
    pub fn set_problem(&self, problem: Option<LeaseProblem>) {
        if let Ok(mut p) = self.problem.lock() {
            *p = problem;
        }
    }

    /// Set the flag; returns the previous value.
    fn set(&self, leading: bool) -> bool {
        self.leading.swap(leading, Ordering::SeqCst)
    }
}

impl Default for LeaderHandle {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a leader-election round or the release failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// A request to the API server for the Lease failed (RBAC, network, server error).
    #[error(
        "Lease {namespace}/{name}: {verb} failed: {}",
        crate::error::kube_message(.source)
    )]
    Api {
        namespace: String,
        name: String,
        /// `get`, `create` or `replace`.
        verb: &'static str,
        #[source]
        source: kube::Error,
    },
    /// The round did not finish within the retry period.
    #[error("Lease {namespace}/{name}: no answer from the API server within {after:?}")]
    Timeout {
        namespace: String,
        name: String,
        after: Duration,
    },
}

impl LeaderError {
    /// Whether the API server refused the request (`403 Forbidden`, an RBAC denial).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Self::Api { source: kube::Error::Api(s), .. } if s.code == 403)
    }
}

/// What one round does, decided from the Lease as read (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No Lease exists: create it holding it.
    Create,
    /// We hold the Lease: renew it.
    Renew,
    /// Another identity holds a Lease that has not expired: do not act.
    Follow {
        holder: String,
        /// When the holder's lease runs out unless it renews (`None`: never, because
        /// the expiry time overflows).
        expires: Option<Timestamp>,
    },
    /// The Lease is free or its holder let it expire: take it over.
    TakeOver {
        /// The previous holder, if any.
        previous: Option<String>,
    },
}

/// Decide one round from the Lease as read (`None`: it does not exist), our
/// identity `me`, the time `now` and our own lease duration, which stands in for a
/// missing or non-positive `leaseDurationSeconds`.
///
/// As in client-go, the holder's own `leaseDurationSeconds` bounds its validity, an
/// empty `holderIdentity` means the Lease is free, and a holder without a
/// `renewTime` is treated as expired.
pub fn decide(
    lease: Option<&Lease>,
    me: &str,
    now: Timestamp,
    lease_duration: Duration,
) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.filter(|h| !h.is_empty());
    let Some(holder) = holder else {
        return Decision::TakeOver { previous: None };
    };
    if holder == me {
        return Decision::Renew;
    }
    let Some(MicroTime(renewed)) = spec.renew_time else {
        return Decision::TakeOver {
            previous: Some(holder),
        };
    };
    let seconds = match spec.lease_duration_seconds {
        Some(s) if s > 0 => i64::from(s),
        _ => duration_seconds(lease_duration),
    };
    match renewed.checked_add(SignedDuration::from_secs(seconds)) {
        Ok(expires) if expires <= now => Decision::TakeOver {
            previous: Some(holder),
        },
        Ok(expires) => Decision::Follow {
            holder,
            expires: Some(expires),
        },
        // An expiry beyond the representable range never comes: keep following.
        Err(_) => Decision::Follow {
            holder,
            expires: None,
        },
    }
}

/// Whole seconds of a lease duration, rounded up and at least 1 (the Lease field is
/// an `int32` of seconds).
fn duration_seconds(d: Duration) -> i64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.clamp(1, i32::MAX as u64) as i64
}

/// Takes part in leader election for one Lease; see the module docs.
#[derive(Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    lease_duration: Duration,
    state: LeaderHandle,
    now: fn() -> Timestamp,
}

impl LeaderElector {
    /// An elector for Lease `namespace/name` under `identity` (unique per replica,
    /// e.g. the pod name), holding the Lease for `lease_duration` per renewal.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        lease_duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration,
            state: LeaderHandle::new(),
            now: Timestamp::now,
        }
    }

    /// Replace the clock (tests pin the time).
    pub fn with_clock(mut self, now: fn() -> Timestamp) -> Self {
        self.now = now;
        self
    }

    /// The handle the controller reads before acting.
    pub fn handle(&self) -> LeaderHandle {
        self.state.clone()
    }

    /// Time between rounds in [`run`](Self::run): a third of the lease duration, as
    /// client-go's defaults (15 s lease, 10 s renew deadline, 2 s retry) keep a
    /// renewal well inside the lease.
    pub fn retry_period(&self) -> Duration {
        (self.lease_duration / 3).max(Duration::from_millis(1))
    }

    /// One round: acquire, renew or observe; updates the handle; returns whether we
    /// lead. On an error the handle says "not leader", keeps the error as its
    /// [`problem`](LeaderHandle::problem), and the error is returned.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, LeaderError> {
        let result = self.round().await;
        self.set_leading(matches!(result, Ok(true)));
        self.state
            .set_problem(result.as_ref().err().map(LeaseProblem::from));
        result
    }

    /// Rounds every [`retry_period`](Self::retry_period) until `shutdown` resolves;
    /// then steps down and releases the Lease if held, so a standby takes over at
    /// once instead of waiting for it to expire. A round that takes longer than the
    /// retry period counts as failed (not leader), so a hung API call cannot keep us
    /// acting past our lease.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let period = self.retry_period();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                _ = ticks.tick() => {}
            }
            let round = tokio::time::timeout(period, self.try_acquire_or_renew());
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                result = round => match result {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) if error.is_forbidden() => {
                        tracing::error!(
                            %error,
                            "leader election round forbidden (RBAC); not leading and not ready \
                             until the ServiceAccount may get, create and update this Lease"
                        );
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "leader election round failed; not leading");
                    }
                    Err(_) => {
                        self.set_leading(false);
                        let error = self.timeout(period);
                        self.state.set_problem(Some(LeaseProblem::from(&error)));
                        tracing::warn!(%error, "leader election round timed out; not leading");
                    }
                },
            }
        }
        self.set_leading(false);
        match tokio::time::timeout(period, self.release()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not release the Lease"),
            Err(_) => {
                let error = self.timeout(period);
                tracing::warn!(%error, "could not release the Lease");
            }
        }
    }

    /// Step down and, if we hold the Lease, clear its holder (client-go's
    /// `ReleaseOnCancel`), so a standby can take it over in its next round.
    pub async fn release(&self) -> Result<(), LeaderError> {
        self.set_leading(false);
        let Some(mut lease) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.api_error("get", e))?
        else {
            return Ok(());
        };
        let spec = lease.spec.take().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        let now = MicroTime((self.now)());
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..spec
        });
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
            .map_err(|e| self.api_error("replace", e))?;
        tracing::info!(lease = %self.name, identity = %self.identity, "released the Lease");
        Ok(())
    }

    /// The I/O of one round; `Ok(true)` when we hold the Lease afterwards.
    async fn round(&self) -> Result<bool, LeaderError> {
        let now = (self.now)();
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.api_error("get", e))?;
        let seconds = duration_seconds(self.lease_duration) as i32;
        match decide(current.as_ref(), &self.identity, now, self.lease_duration) {
            Decision::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        namespace: Some(self.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_duration_seconds: Some(seconds),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(status))
                        if status.is_conflict() || status.is_already_exists() =>
                    {
                        tracing::debug!(lease = %self.name, "another replica created the Lease first");
                        Ok(false)
                    }
                    Err(e) => Err(self.api_error("create", e)),
                }
            }
            Decision::Renew => {
                let mut lease = current.unwrap_or_default();
                let spec = lease.spec.take().unwrap_or_default();
                lease.spec = Some(LeaseSpec {
                    renew_time: Some(MicroTime(now)),
                    lease_duration_seconds: Some(seconds),
                    ..spec
                });
                self.replace(&lease).await
            }
            Decision::Follow { holder, expires } => {
                tracing::debug!(lease = %self.name, %holder, ?expires, "Lease held by another replica");
                Ok(false)
            }
            Decision::TakeOver { previous } => {
                let mut lease = current.unwrap_or_default();
                let spec = lease.spec.take().unwrap_or_default();
                tracing::info!(lease = %self.name, ?previous, "Lease free or expired; taking it over");
                lease.spec = Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_duration_seconds: Some(seconds),
                    lease_transitions: Some(spec.lease_transitions.unwrap_or(0).saturating_add(1)),
                    ..spec
                });
                self.replace(&lease).await
            }
        }
    }

    /// Replace the Lease with the `resourceVersion` it was read with; a conflict
    /// means another replica wrote in between, so we do not lead this round.
    async fn replace(&self, lease: &Lease) -> Result<bool, LeaderError> {
        match self
            .api
            .replace(&self.name, &PostParams::default(), lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.is_conflict() => {
                tracing::debug!(lease = %self.name, "Lease changed since it was read; lost this round");
                Ok(false)
            }
            Err(e) => Err(self.api_error("replace", e)),
        }
    }

    /// Update the handle and log transitions.
    fn set_leading(&self, leading: bool) {
        let was = self.state.set(leading);
        match (was, leading) {
            (false, true) => {
                tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
            }
            (true, false) => {
                tracing::warn!(lease = %self.name, identity = %self.identity, "stepped down as leader");
            }
            _ => {}
        }
    }

    fn api_error(&self, verb: &'static str, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            verb,
            source,
        }
    }

    fn timeout(&self, after: Duration) -> LeaderError {
        LeaderError::Timeout {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_api::FakeApi;

    #[tokio::test]
    async fn a_forbidden_lease_is_a_forbidden_problem_until_granted() {
        let fake = FakeApi::new();
        fake.forbid("get", "leases");
        let e = LeaderElector::new(
            fake.client(),
            "ops",
            "aperture-operator",
            "me",
            Duration::from_secs(15),
        );
        let handle = e.handle();
        let err = e.try_acquire_or_renew().await.unwrap_err();
        assert!(err.is_forbidden(), "{err}");
        assert!(!handle.is_leader());
        let problem = handle.problem().expect("a problem");
        assert!(problem.forbidden);
        assert!(
            problem
                .message
                .contains("Lease ops/aperture-operator: get failed")
                && problem.message.contains("cannot get resource \"leases\""),
            "{problem}"
        );
        // Create refused too (the Lease does not exist yet).
        fake.allow_all();
        fake.forbid("create", "leases");
        let err = e.try_acquire_or_renew().await.unwrap_err();
        assert!(
            err.is_forbidden() && err.to_string().contains("create failed"),
            "{err}"
        );
        // Granted: the next round leads and the problem is gone.
        fake.allow_all();
        assert!(e.try_acquire_or_renew().await.unwrap());
        assert!(handle.is_leader());
        assert_eq!(handle.problem(), None);
    }
}
