//! Shared state of the controller (controller-rs' `State`/`Context` split): what
//! outlives reconciles (metrics, readiness, leadership, worker defaults) and what each
//! reconcile gets (the cluster client wrapper and caches).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use aperture_pipeline::plan::Plan;

use crate::cluster::Cluster;
use crate::config::WorkerDefaults;
use crate::leader::LeaderHandle;
use crate::metrics::Metrics;
use crate::server::Readiness;

/// Long-lived operator state, shared with the HTTP server.
#[derive(Clone)]
pub struct State {
    pub metrics: Arc<Metrics>,
    /// What `/readyz` reports (the controller's state and leader election's).
    pub readiness: Readiness,
    pub leader: LeaderHandle,
    pub defaults: WorkerDefaults,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

impl State {
    pub fn new(defaults: WorkerDefaults, leader: LeaderHandle) -> Self {
        Self {
            metrics: Arc::new(Metrics::new()),
            readiness: Readiness::new(leader.clone()),
            leader,
            defaults,
        }
    }

    /// The context reconciles run with.
    pub fn to_context(&self, cluster: Cluster) -> Arc<Context> {
        Arc::new(Context {
            cluster,
            state: self.clone(),
            plans: Mutex::new(HashMap::new()),
            lease_warned: Mutex::new(HashSet::new()),
        })
    }
}

/// What every reconcile gets.
#[derive(Debug)]
pub struct Context {
    pub cluster: Cluster,
    pub state: State,
    /// Plans by (ImagingJob uid, spec digest): a plan is read from storage once per
    /// operator process, not once per reconcile.
    plans: Mutex<HashMap<(String, String), Arc<Plan>>>,
    /// ImagingJobs (by uid) already told that leader election is forbidden: one Event
    /// per job per operator process.
    lease_warned: Mutex<HashSet<String>>,
}

impl Context {
    pub fn cached_plan(&self, uid: &str, digest: &str) -> Option<Arc<Plan>> {
        self.plans
            .lock()
            .ok()?
            .get(&(uid.to_string(), digest.to_string()))
            .cloned()
    }

    pub fn cache_plan(&self, uid: &str, digest: &str, plan: Arc<Plan>) {
        if let Ok(mut m) = self.plans.lock() {
            m.insert((uid.to_string(), digest.to_string()), plan);
        }
    }

    /// Whether job `uid` has not yet been told that leader election is forbidden (and
    /// note that it now is).
    pub fn first_lease_warning(&self, uid: &str) -> bool {
        self.lease_warned
            .lock()
            .is_ok_and(|mut s| s.insert(uid.to_string()))
    }

    pub fn forget(&self, uid: &str) {
        if let Ok(mut m) = self.plans.lock() {
            m.retain(|(u, _), _| u != uid);
        }
    }
}
