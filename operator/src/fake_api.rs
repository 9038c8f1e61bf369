//! A fake Kubernetes API server for the reconciler tests (tests only): a
//! `tower_test` mock service whose handler keeps ImagingJobs, Jobs, Pods, Secrets,
//! Leases and Events in memory, answers the requests the operator makes the way the
//! API server does, and records every request so tests can assert what was (and was
//! not) called. Requests can be refused with RBAC's `403 Forbidden` per verb and
//! resource ([`FakeApi::forbid`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Value,
}

/// Objects by kind, then `namespace/name`.
#[derive(Debug, Default)]
pub struct FakeState {
    pub objects: BTreeMap<&'static str, BTreeMap<String, Value>>,
    pub requests: Vec<Seen>,
    pub events: Vec<Value>,
    /// Kinds whose API is not installed (every request 404s, as for a missing CRD).
    pub missing: Vec<&'static str>,
    /// (verb, resource) pairs RBAC refuses, e.g. `("patch", "imagingjobs/status")`.
    pub forbidden: Vec<(&'static str, &'static str)>,
    rv: u64,
}

/// The fake; clone it freely (state is shared).
#[derive(Debug, Clone, Default)]
pub struct FakeApi {
    pub state: Arc<Mutex<FakeState>>,
}

/// Kind of an API path's resource, with its (namespace, name, subresource).
struct Target {
    kind: &'static str,
    /// API group (`""` for the core group) and resource (`imagingjobs`).
    group: String,
    res: String,
    ns: String,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/namespaces/{ns}/{res}[/{name}[/{sub}]] or /apis/{g}/{v}/namespaces/...
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, rest @ ..] => (ns.to_string(), rest),
        rest => (String::new(), rest),
    };
    let (res, name, sub) = match rest {
        [res] => (*res, None, None),
        [res, name] => (*res, Some(name.to_string()), None),
        [res, name, sub] => (*res, Some(name.to_string()), Some(sub.to_string())),
        _ => return None,
    };
    let kind = match res {
        "imagingjobs" => "ImagingJob",
        "jobs" => "Job",
        "pods" => "Pod",
        "secrets" => "Secret",
        "leases" => "Lease",
        "events" => "Event",
        _ => return None,
    };
    Some(Target {
        kind,
        group: group.to_string(),
        res: res.to_string(),
        ns,
        name,
        sub,
    })
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| url_decode(v))
    })
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `obj`'s labels match a selector of `k=v` terms.
fn labels_match(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        let Some((k, v)) = term.split_once('=') else {
            return true;
        };
        obj["metadata"]["labels"][k].as_str() == Some(v)
    })
}

fn fields_match(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        let Some((k, v)) = term.split_once('=') else {
            return true;
        };
        let mut cur = obj;
        for p in k.split('.') {
            cur = &cur[p];
        }
        cur.as_str() == Some(v)
    })
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

/// Merges `patch` into `target` (JSON merge patch, RFC 7386), as a stand-in for
/// server-side apply with a single field manager.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

impl FakeApi {
    pub fn new() -> Self {
        Self::default()
    }

    /// A kube client whose requests this fake answers.
    pub fn client(&self) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = self.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let resp = fake.handle(req).await;
                send.send_response(resp);
            }
        });
        Client::new(service, "default")
    }

    /// Stores an object (kind from its `kind` field).
    pub fn put(&self, obj: Value) {
        let kind: &'static str = match obj["kind"].as_str() {
            Some("ImagingJob") => "ImagingJob",
            Some("Job") => "Job",
            Some("Pod") => "Pod",
            Some("Secret") => "Secret",
            Some("Lease") => "Lease",
            other => panic!("fake api: unsupported kind {other:?}"),
        };
        let key = format!(
            "{}/{}",
            obj["metadata"]["namespace"].as_str().unwrap_or(""),
            obj["metadata"]["name"].as_str().unwrap_or("")
        );
        let mut s = self.state.lock().unwrap();
        s.objects.entry(kind).or_default().insert(key, obj);
    }

    pub fn get(&self, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let s = self.state.lock().unwrap();
        s.objects.get(kind)?.get(&format!("{ns}/{name}")).cloned()
    }

    pub fn list(&self, kind: &str) -> Vec<Value> {
        let s = self.state.lock().unwrap();
        s.objects
            .get(kind)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Applies `f` to a stored object in place.
    pub fn update(&self, kind: &str, ns: &str, name: &str, f: impl FnOnce(&mut Value)) {
        let mut s = self.state.lock().unwrap();
        let obj = s
            .objects
            .get_mut(kind)
            .and_then(|m| m.get_mut(&format!("{ns}/{name}")))
            .unwrap_or_else(|| panic!("fake api: no {kind} {ns}/{name}"));
        f(obj);
    }

    /// RBAC refuses `verb` (`get`, `list`, `create`, `update`, `patch`, `delete`) on
    /// `resource` (`imagingjobs/status`) from now on.
    pub fn forbid(&self, verb: &'static str, resource: &'static str) {
        self.state.lock().unwrap().forbidden.push((verb, resource));
    }

    /// RBAC allows everything again.
    pub fn allow_all(&self) {
        self.state.lock().unwrap().forbidden.clear();
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    /// Reasons of the events recorded so far.
    pub fn event_reasons(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .events
            .iter()
            .map(|e| e["reason"].as_str().unwrap_or("").to_string())
            .collect()
    }

    pub fn events(&self) -> Vec<Value> {
        self.state.lock().unwrap().events.clone()
    }

    async fn handle(&self, req: Request<Body>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let bytes = body.collect_bytes().await.unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().unwrap_or("").to_string();
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let mut s = self.state.lock().unwrap();
        s.requests.push(Seen {
            method: parts.method.clone(),
            path: path.clone(),
            query: query.clone(),
            body: body.clone(),
        });
        let (code, out) = s.answer(&parts.method, &path, &query, &content_type, body);
        Response::builder()
            .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&out).unwrap_or_default()))
            .unwrap()
    }
}

impl FakeState {
    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    fn answer(
        &mut self,
        method: &Method,
        path: &str,
        query: &str,
        content_type: &str,
        body: Value,
    ) -> (u16, Value) {
        let Some(t) = parse_path(path) else {
            return (
                404,
                status_body(404, "NotFound", &format!("fake api: no route {path}")),
            );
        };
        let verb = match (method.clone(), &t.name) {
            (Method::GET, None) if query_param(query, "watch").is_some() => "watch",
            (Method::GET, None) => "list",
            (Method::GET, Some(_)) => "get",
            (Method::POST, _) => "create",
            (Method::PUT, _) => "update",
            (Method::PATCH, _) => "patch",
            (Method::DELETE, _) => "delete",
            _ => "",
        };
        let resource = match &t.sub {
            Some(sub) => format!("{}/{sub}", t.res),
            None => t.res.clone(),
        };
        if self
            .forbidden
            .iter()
            .any(|(v, r)| *v == verb && *r == resource)
        {
            // The API server's words for an RBAC denial.
            let qualified = if t.group.is_empty() {
                t.res.clone()
            } else {
                format!("{}.{}", t.res, t.group)
            };
            let object = t
                .name
                .as_ref()
                .map(|n| format!(" {n:?}"))
                .unwrap_or_default();
            let message = format!(
                "{qualified}{object} is forbidden: User \"system:serviceaccount:{ns}:aperture\" \
                 cannot {verb} resource {resource:?} in API group {group:?} in the namespace {ns:?}",
                ns = t.ns,
                group = t.group,
            );
            return (403, status_body(403, "Forbidden", &message));
        }
        if self.missing.contains(&t.kind) {
            return (
                404,
                status_body(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ),
            );
        }
        if t.kind == "Event" && *method == Method::POST {
            self.events.push(body.clone());
            return (201, body);
        }
        let key = format!("{}/{}", t.ns, t.name.clone().unwrap_or_default());
        let rv = self.next_rv();
        let store = self.objects.entry(t.kind).or_default();
        match (method.clone(), &t.name) {
            (Method::GET, None) => {
                let items: Vec<Value> = store
                    .iter()
                    .filter(|(k, _)| t.ns.is_empty() || k.starts_with(&format!("{}/", t.ns)))
                    .map(|(_, v)| v.clone())
                    .filter(|v| {
                        query_param(query, "labelSelector").is_none_or(|s| labels_match(v, &s))
                    })
                    .filter(|v| {
                        query_param(query, "fieldSelector").is_none_or(|s| fields_match(v, &s))
                    })
                    .collect();
                (
                    200,
                    json!({"kind": format!("{}List", t.kind), "apiVersion": "v1",
                             "metadata": {"resourceVersion": rv}, "items": items}),
                )
            }
            (Method::GET, Some(name)) => match store.get(&key) {
                Some(v) => (200, v.clone()),
                None => (
                    404,
                    status_body(404, "NotFound", &format!("{} {name} not found", t.kind)),
                ),
            },
            (Method::POST, None) => {
                let name = body["metadata"]["name"].as_str().unwrap_or("").to_string();
                let key = format!("{}/{name}", t.ns);
                if store.contains_key(&key) {
                    return (
                        409,
                        status_body(409, "AlreadyExists", &format!("{name} exists")),
                    );
                }
                let mut obj = body;
                obj["metadata"]["resourceVersion"] = json!(rv);
                store.insert(key, obj.clone());
                (201, obj)
            }
            (Method::PUT, Some(name)) => {
                let Some(cur) = store.get(&key) else {
                    return (
                        404,
                        status_body(404, "NotFound", &format!("{name} not found")),
                    );
                };
                if body["metadata"]["resourceVersion"] != cur["metadata"]["resourceVersion"] {
                    return (
                        409,
                        status_body(409, "Conflict", "the object has been modified"),
                    );
                }
                let mut obj = body;
                obj["metadata"]["resourceVersion"] = json!(rv);
                store.insert(key, obj.clone());
                (200, obj)
            }
            (Method::DELETE, Some(name)) => match store.remove(&key) {
                Some(_) => (
                    200,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success",
                                        "metadata": {}, "details": {"name": name}}),
                ),
                None => (
                    404,
                    status_body(404, "NotFound", &format!("{name} not found")),
                ),
            },
            (Method::PATCH, Some(name)) => {
                let apply = content_type.contains("apply-patch");
                let json_patch = content_type.contains("json-patch");
                let existing = store.get(&key).cloned();
                let mut obj = match (existing, apply) {
                    (Some(o), _) => o,
                    (None, true) => {
                        let mut o = json!({"metadata": {"name": name, "namespace": t.ns,
                                            "uid": format!("uid-{name}"),
                                            "creationTimestamp": "2026-11-27T00:00:00Z"}});
                        o["apiVersion"] = body["apiVersion"].clone();
                        o["kind"] = body["kind"].clone();
                        o
                    }
                    (None, false) => {
                        return (
                            404,
                            status_body(404, "NotFound", &format!("{name} not found")),
                        );
                    }
                };
                if json_patch {
                    if let Err(e) = apply_json_patch(&mut obj, &body) {
                        return (422, status_body(422, "Invalid", &e));
                    }
                } else if t.sub.as_deref() == Some("status") {
                    // Server-side apply on the status subresource: the manager owns the
                    // whole status it sends.
                    obj["status"] = body["status"].clone();
                } else {
                    let mut b = body.clone();
                    if let Some(m) = b.as_object_mut() {
                        m.remove("status");
                    }
                    merge(&mut obj, &b);
                }
                obj["metadata"]["resourceVersion"] = json!(rv);
                store.insert(key, obj.clone());
                (200, obj)
            }
            _ => (
                405,
                status_body(405, "MethodNotAllowed", &format!("{method} {path}")),
            ),
        }
    }
}

/// The JSON-patch operations kube's finalizer helper sends (test, add, remove).
fn apply_json_patch(obj: &mut Value, ops: &Value) -> Result<(), String> {
    for op in ops.as_array().ok_or("a JSON patch is an array")? {
        let path = op["path"].as_str().ok_or("op without path")?;
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (last, parents) = segs.split_last().ok_or("empty path")?;
        let mut cur = &mut *obj;
        for p in parents {
            cur = match cur {
                Value::Object(m) => m.entry(p.to_string()).or_insert(Value::Null),
                Value::Array(a) => a
                    .get_mut(p.parse::<usize>().map_err(|_| "bad index")?)
                    .ok_or("index out of range")?,
                _ => return Err(format!("cannot descend into {path}")),
            };
        }
        let target = |cur: &Value| -> Value {
            match cur {
                Value::Object(m) => m.get(*last).cloned().unwrap_or(Value::Null),
                Value::Array(a) => last
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| a.get(i).cloned())
                    .unwrap_or(Value::Null),
                _ => Value::Null,
            }
        };
        match op["op"].as_str() {
            Some("test") => {
                if target(cur) != op["value"] {
                    return Err(format!("test failed at {path}"));
                }
            }
            Some("add") => match cur {
                Value::Object(m) => {
                    m.insert(last.to_string(), op["value"].clone());
                }
                Value::Array(a) if *last == "-" => a.push(op["value"].clone()),
                _ => return Err(format!("cannot add at {path}")),
            },
            Some("remove") => match cur {
                Value::Object(m) => {
                    m.remove(*last);
                }
                Value::Array(a) => {
                    let i: usize = last.parse().map_err(|_| "bad index")?;
                    if i >= a.len() {
                        return Err("remove index out of range".into());
                    }
                    a.remove(i);
                }
                _ => return Err(format!("cannot remove at {path}")),
            },
            other => return Err(format!("unsupported op {other:?}")),
        }
    }
    Ok(())
}
