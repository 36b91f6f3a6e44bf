//! The resource side of the ARM test server: virtual machines, network interfaces, public IPs and
//! managed disks of resource groups that exist, stored in memory, with the api-versions
//! ([`super::rules`]), required fields, error bodies, asynchronous operations (non-zero
//! `Retry-After`, polled at the api-version that started them), absolute `nextLink` paging,
//! delete options, instance views, compute throttling and the refusals of Azure's REST
//! reference. GET never shows the administrator password or the custom data; tests read those
//! from [`Store::resources`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

pub use super::power::{Shortage, ShortageCode};
use super::rules::{
    ComputeBudgets, accepted_versions, get, immutable_changed, shown, type_name, validate,
};

/// An answer: status, extra headers, body.
pub type Reply = (StatusCode, Vec<(String, String)>, Value);

/// ARM's error body.
pub fn arm_error(status: StatusCode, code: &str, message: &str) -> Reply {
    (
        status,
        Vec::new(),
        json!({"error": {"code": code, "message": message}}),
    )
}

/// A fault to inject: the next request whose method and path match is answered with it.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Only this method (any when `None`).
    pub method: Option<Method>,
    /// Only paths containing this (lower case).
    pub path_contains: String,
    /// The status.
    pub status: u16,
    /// ARM's error code.
    pub code: String,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

/// A request ARM receives but carries out only later, without ever answering its client: the
/// PUT of a controller that died (or was cut off) before the answer, still being processed by
/// ARM when the next attempt starts.
#[derive(Debug, Clone)]
pub struct Hold {
    /// The first request by this method whose path contains `path_contains` (lower case) is
    /// held.
    pub method: Method,
    /// See `method`.
    pub path_contains: String,
    /// The held request is carried out just before the first later request whose path
    /// contains this (lower case).
    pub release_before: String,
}

/// A held request, as received.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    release_before: String,
    method: Method,
    path: String,
    query: String,
    body: Value,
}

/// What finishes when an operation completes.
#[derive(Debug, Clone)]
pub(crate) enum Finish {
    Created(String),
    Deleted(String),
    /// The resource, the code and the message.
    Fails(String, String, String),
    /// A deallocate ends: the VM is deallocated.
    Deallocated(String),
    /// A start ends: the VM runs.
    Started(String),
    /// A start ends `Failed` (an allocation failure): the VM stays deallocated, its
    /// provisioning state `Failed`; the code and the message.
    StartFails(String, String, String),
    /// Preempted by a later power operation on the same VM (`OperationPreempted`).
    Preempted,
    /// An update (`PATCH`) of a VM ends: `provisioningState` `Succeeded`.
    Updated(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Operation {
    pub(super) done_at: Instant,
    pub(super) finish: Finish,
    pub(super) finished: bool,
    /// The api-version of the request that started it: polls must use it.
    pub(super) version: String,
}

/// The stored resources and operations.
#[derive(Debug, Default)]
pub struct Store {
    /// Resources by lower-case id.
    pub resources: BTreeMap<String, Value>,
    pub(crate) operations: BTreeMap<String, Operation>,
    /// How long operations run.
    pub lro_delay: Duration,
    /// How long a VM's create and delete run, when set (else `lro_delay`): minutes on Azure,
    /// against seconds for a NIC.
    pub vm_lro_delay: Option<Duration>,
    /// A request to hold (see [`Hold`]), when set; taken by the first request it matches.
    pub hold: Option<Hold>,
    /// Requests held and not yet carried out.
    pub(crate) held: Vec<Held>,
    /// List page size.
    pub page_size: usize,
    /// Faults waiting to be served.
    pub faults: Vec<Fault>,
    /// `x-ms-ratelimit-remaining-subscription-writes` sent with every answer, when set.
    pub remaining_writes: Option<i64>,
    /// Every request: method, path, api-version, body.
    pub requests: Vec<(Method, String, String, Value)>,
    /// The VM create fails with this code when set (an allocation failure, say); the VM stays,
    /// `Failed`.
    pub vm_create_failure: Option<(String, String)>,
    /// The resource groups that exist (lower case `/subscriptions/{s}/resourcegroups/{rg}`).
    pub resource_groups: BTreeSet<String>,
    /// `Retry-After` seconds on 201/202 answers, running operations and throttled calls.
    pub retry_after: u64,
    /// Where `nextLink` and operation URLs point, instead of the server itself, when set.
    pub link_base: Option<String>,
    /// Power state (`PowerState/running`, …) of each VM by lower-case id.
    pub power: BTreeMap<String, String>,
    /// Compute's throttling budgets for VM calls.
    pub compute: ComputeBudgets,
    /// How long a deallocate or start runs, when set (else `lro_delay`).
    pub power_lro_delay: Option<Duration>,
    /// Sizes and zones out of capacity for creates and/or starts (see [`Shortage`]).
    pub shortages: Vec<Shortage>,
    /// VMs resized while running (Azure restarts them): what a warm tier must never do.
    pub resized_running: Vec<String>,
}

/// The test subscription.
pub const SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000001";

impl Store {
    /// Completes the operations that are due (every request does it first).
    pub fn settle(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .operations
            .iter()
            .filter(|(_, o)| !o.finished && o.done_at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for id in due {
            let finish = self.operations[&id].finish.clone();
            self.operations.get_mut(&id).expect("op").finished = true;
            match finish {
                Finish::Created(rid) => {
                    if let Some(r) = self.resources.get_mut(&rid) {
                        r["properties"]["provisioningState"] = json!("Succeeded");
                        if r["type"] == "microsoft.compute/virtualmachines" {
                            self.power.insert(rid.clone(), "PowerState/running".into());
                        }
                    }
                }
                Finish::Deleted(rid) => self.delete_now(&rid),
                Finish::Fails(rid, ..) => {
                    if let Some(r) = self.resources.get_mut(&rid) {
                        r["properties"]["provisioningState"] = json!("Failed");
                    }
                }
                Finish::Deallocated(ref rid)
                | Finish::Started(ref rid)
                | Finish::StartFails(ref rid, ..) => self.power_settled(rid, &finish),
                Finish::Updated(rid) => {
                    if let Some(r) = self.resources.get_mut(&rid) {
                        r["properties"]["provisioningState"] = json!("Succeeded");
                    }
                }
                Finish::Preempted => {}
            }
        }
    }

    /// Removes a resource and what its delete options take with it.
    fn delete_now(&mut self, id: &str) {
        let Some(r) = self.resources.remove(id) else {
            return;
        };
        self.power.remove(id);
        // What the VM used and does not take with it is detached.
        for other in self.resources.values_mut() {
            let vm = get(other, &["properties", "virtualMachine", "id"])
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase);
            if vm.as_deref() == Some(id) {
                other["properties"]["virtualMachine"] = Value::Null;
            }
            let managed_by = other
                .get("managedBy")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase);
            if managed_by.as_deref() == Some(id) {
                other["managedBy"] = Value::Null;
            }
        }
        let mut cascade = Vec::new();
        if let Some(nics) = get(&r, &["properties", "networkProfile", "networkInterfaces"]) {
            for nic in nics.as_array().into_iter().flatten() {
                if get(nic, &["properties", "deleteOption"]) == Some(&json!("Delete")) {
                    cascade.extend(nic["id"].as_str().map(str::to_ascii_lowercase));
                }
            }
        }
        if let Some(disk) = get(&r, &["properties", "storageProfile", "osDisk"])
            && disk.get("deleteOption") == Some(&json!("Delete"))
        {
            let rg = id.split("/providers/").next().unwrap_or_default();
            let name = disk["name"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase();
            cascade.push(format!("{rg}/providers/microsoft.compute/disks/{name}"));
        }
        if let Some(configs) = get(&r, &["properties", "ipConfigurations"]) {
            for c in configs.as_array().into_iter().flatten() {
                let ip = get(c, &["properties", "publicIPAddress"]);
                if ip.and_then(|i| get(i, &["properties", "deleteOption"]))
                    == Some(&json!("Delete"))
                {
                    cascade.extend(
                        ip.and_then(|i| i["id"].as_str())
                            .map(str::to_ascii_lowercase),
                    );
                }
            }
        }
        for id in cascade {
            self.delete_now(&id);
        }
    }

    /// Starts an operation of a resource provider (`microsoft.compute`) at the api-version of
    /// the request: its `Azure-AsyncOperation` and `Location` URLs, absolute, as ARM gives them.
    pub(super) fn start_operation(
        &mut self,
        base: &str,
        namespace: &str,
        version: &str,
        finish: Finish,
    ) -> (String, String) {
        let id = format!("op-{}", self.operations.len() + 1);
        let vm = match &finish {
            Finish::Created(r) | Finish::Deleted(r) | Finish::Fails(r, ..) => {
                r.contains("/microsoft.compute/virtualmachines/")
            }
            _ => false,
        };
        let power = matches!(
            finish,
            Finish::Deallocated(_) | Finish::Started(_) | Finish::StartFails(..)
        );
        let delay = match (self.vm_lro_delay, self.power_lro_delay) {
            (_, Some(d)) if power => d,
            (Some(d), _) if vm => d,
            _ => self.lro_delay,
        };
        self.operations.insert(
            id.clone(),
            Operation {
                done_at: Instant::now() + delay,
                finish,
                finished: false,
                version: version.to_owned(),
            },
        );
        self.operation_urls(base, namespace, &id, version)
    }

    /// The `Azure-AsyncOperation` and `Location` URLs of operation `id`.
    pub(super) fn operation_urls(
        &self,
        base: &str,
        namespace: &str,
        id: &str,
        version: &str,
    ) -> (String, String) {
        let base = self.link_base.clone().unwrap_or_else(|| base.to_owned());
        let op = format!(
            "{base}/subscriptions/{SUBSCRIPTION}/providers/{namespace}/locations/eastus/operations/{id}"
        );
        (
            format!("{op}?api-version={version}"),
            format!("{op}/result?api-version={version}"),
        )
    }

    /// Holds the request when it is the one [`Store::hold`] names: ARM has it, its client never
    /// gets an answer.
    pub fn take_hold(&mut self, method: &Method, path: &str, query: &str, body: &Value) -> bool {
        let lower = path.to_ascii_lowercase();
        let matches = self
            .hold
            .as_ref()
            .is_some_and(|h| h.method == method && lower.contains(&h.path_contains));
        if !matches {
            return false;
        }
        let hold = self.hold.take().expect("a hold");
        self.held.push(Held {
            release_before: hold.release_before,
            method: method.clone(),
            path: path.to_owned(),
            query: query.to_owned(),
            body: body.clone(),
        });
        true
    }

    /// The headers of an answer that started an operation.
    pub(super) fn started(&self, op: String, location: Option<String>) -> Vec<(String, String)> {
        let mut headers = vec![
            ("azure-asyncoperation".to_owned(), op),
            ("retry-after".to_owned(), self.retry_after.to_string()),
        ];
        headers.extend(location.map(|l| ("location".to_owned(), l)));
        headers
    }

    /// Serves a request under `/subscriptions/…`: resources, and operations
    /// (`/subscriptions/{s}/providers/{ns}/locations/{l}/operations/{id}`).
    pub fn serve(
        &mut self,
        base: &str,
        method: &Method,
        path: &str,
        query: &str,
        body: &Value,
    ) -> Reply {
        self.settle();
        let lower = path.to_ascii_lowercase();
        if let Some(i) = self
            .held
            .iter()
            .position(|h| lower.contains(&h.release_before))
        {
            let h = self.held.remove(i);
            // Its answer went to a client that is gone.
            let _ = self.serve(base, &h.method, &h.path, &h.query, &h.body);
        }
        let api_version = query
            .split('&')
            .find_map(|p| p.strip_prefix("api-version="))
            .unwrap_or_default()
            .to_owned();
        self.requests.push((
            method.clone(),
            path.to_owned(),
            api_version.clone(),
            body.clone(),
        ));
        if let Some(i) = self.faults.iter().position(|f| {
            f.method.as_ref().is_none_or(|m| m == method) && lower.contains(&f.path_contains)
        }) {
            let f = self.faults.remove(i);
            let mut reply = arm_error(
                StatusCode::from_u16(f.status).expect("status"),
                &f.code,
                "injected by the test server",
            );
            if let Some(s) = f.retry_after {
                reply.1.push(("retry-after".into(), s.to_string()));
            }
            return reply;
        }
        let segments: Vec<&str> = lower.trim_matches('/').split('/').collect();
        if let [
            "subscriptions",
            _,
            "providers",
            _,
            "locations",
            _,
            "operations",
            id,
            rest @ ..,
        ] = segments.as_slice()
        {
            return self.operation(id, rest.first() == Some(&"result"), &api_version);
        }
        // /subscriptions/{s}/resourcegroups/{rg}/providers/{ns}/{type}[/{name}[/{sub}]], {sub}
        // one of a VM's `instanceView`, `deallocate`, `start`.
        let (group, kind, name, sub) = match segments.as_slice() {
            ["subscriptions", s, "resourcegroups", g, "providers", ns, t] => (
                format!("/subscriptions/{s}/resourcegroups/{g}"),
                format!("{ns}/{t}"),
                None,
                None,
            ),
            [
                "subscriptions",
                s,
                "resourcegroups",
                g,
                "providers",
                ns,
                t,
                n,
                rest @ ..,
            ] if rest.is_empty()
                || (*ns == "microsoft.compute"
                    && *t == "virtualmachines"
                    && matches!(rest, ["instanceview" | "deallocate" | "start"])) =>
            {
                (
                    format!("/subscriptions/{s}/resourcegroups/{g}"),
                    format!("{ns}/{t}"),
                    Some(n.to_string()),
                    rest.first().map(|r| r.to_string()),
                )
            }
            _ => {
                return arm_error(
                    StatusCode::NOT_FOUND,
                    "InvalidResourceType",
                    &format!("no route for {path}"),
                );
            }
        };
        let Some(versions) = accepted_versions(&kind) else {
            return arm_error(
                StatusCode::NOT_FOUND,
                "InvalidResourceType",
                &format!("The resource type '{kind}' could not be found"),
            );
        };
        if api_version.is_empty() {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        }
        if !versions.contains(&api_version.as_str()) {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "NoRegisteredProviderFound",
                &format!(
                    "No registered resource provider found for location 'eastus' and API version '{api_version}' for type '{}'. The supported api-versions are '{}'. The supported locations are 'eastus, westeurope'.",
                    type_name(&kind),
                    versions.join(", ")
                ),
            );
        }
        if !self.resource_groups.contains(&group) {
            let rg = segments[3];
            return arm_error(
                StatusCode::NOT_FOUND,
                "ResourceGroupNotFound",
                &format!("Resource group '{rg}' could not be found."),
            );
        }
        let mut throttle = None;
        if kind == "microsoft.compute/virtualmachines" {
            let (header, throttled) = self.compute.take(method.as_str());
            if throttled {
                let mut reply = arm_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "OperationNotAllowed",
                    "The server rejected the request because too many requests have been received for this subscription.",
                );
                reply
                    .1
                    .push(("x-ms-ratelimit-remaining-resource".into(), header));
                reply
                    .1
                    .push(("retry-after".into(), self.retry_after.max(1).to_string()));
                return reply;
            }
            throttle = Some(header);
        }
        let id = match &name {
            Some(_) if sub.is_some() => segments[..8].iter().fold(String::new(), |mut p, s| {
                p.push('/');
                p.push_str(s);
                p
            }),
            _ => lower.clone(),
        };
        let not_found = || {
            arm_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                &format!(
                    "The Resource '{kind}/{}' under resource group '{}' was not found.",
                    segments.get(7).unwrap_or(&""),
                    segments[3]
                ),
            )
        };
        let view = sub.as_deref() == Some("instanceview");
        let mut reply = match (method, name) {
            (&Method::GET, None) => self.list(base, &lower, query, &api_version),
            (&Method::GET, Some(_)) if view => match self.instance_view(&id) {
                Some(v) => (StatusCode::OK, Vec::new(), v),
                None => not_found(),
            },
            (&Method::GET, Some(_)) => match self.resources.get(&id) {
                Some(r) => {
                    let mut r = shown(r);
                    if query.split('&').any(|p| p == "$expand=instanceView") {
                        r["properties"]["instanceView"] =
                            self.instance_view(&id).unwrap_or(Value::Null);
                    }
                    (StatusCode::OK, Vec::new(), r)
                }
                None => not_found(),
            },
            (&Method::POST, Some(_)) if matches!(sub.as_deref(), Some("deallocate" | "start")) => {
                self.power_action(base, &id, sub.as_deref().unwrap_or_default(), &api_version)
            }
            (&Method::PUT, Some(n)) if sub.is_none() => {
                self.put(base, &lower, path, &kind, &n, &api_version, body)
            }
            (&Method::PATCH, Some(_)) if sub.is_none() => match self.resources.get(&id) {
                Some(_) if kind.eq_ignore_ascii_case("microsoft.compute/virtualmachines") => {
                    self.update_vm(base, &id, body, &api_version)
                }
                Some(_) => {
                    let r = self.resources.get_mut(&id).expect("present");
                    if let Some(tags) = body.get("tags") {
                        r["tags"] = tags.clone();
                    }
                    (StatusCode::OK, Vec::new(), shown(r))
                }
                None => not_found(),
            },
            (&Method::DELETE, Some(_)) if sub.is_none() => {
                self.delete(base, &lower, &kind, &api_version)
            }
            _ => arm_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "not supported",
            ),
        };
        if let Some(h) = throttle {
            reply
                .1
                .push(("x-ms-ratelimit-remaining-resource".into(), h));
        }
        reply
    }

    /// A VM's instance view: its provisioning and power states.
    fn instance_view(&self, id: &str) -> Option<Value> {
        let r = self.resources.get(id)?;
        let provisioning = r["properties"]["provisioningState"]
            .as_str()
            .unwrap_or("Creating")
            .to_ascii_lowercase();
        let mut statuses = vec![json!({"code": format!("ProvisioningState/{provisioning}")})];
        if let Some(p) = self.power.get(id) {
            statuses.push(json!({ "code": p }));
        }
        Some(json!({ "statuses": statuses }))
    }

    fn delete(&mut self, base: &str, id: &str, kind: &str, version: &str) -> Reply {
        let Some(r) = self.resources.get(id) else {
            return (StatusCode::NO_CONTENT, Vec::new(), Value::Null);
        };
        let vm = get(r, &["properties", "virtualMachine", "id"])
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
        if let Some(vm) = vm.filter(|vm| self.resources.contains_key(vm)) {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "NicInUse",
                &format!(
                    "Network Interface {id} is used by existing resource {vm}. In order to delete the network interface, it must be dissociated from the resource."
                ),
            );
        }
        let namespace = kind.split('/').next().unwrap_or_default().to_owned();
        // A DELETE of a resource being deleted is accepted again and follows the same
        // deletion (DELETE is idempotent); it does not start the deletion over.
        let running = self.operations.iter().find_map(|(op, o)| {
            let same = matches!(&o.finish, Finish::Deleted(r) if r == id);
            (same && !o.finished && o.version == version).then(|| op.clone())
        });
        if let Some(op) = running {
            let (op, location) = self.operation_urls(base, &namespace, &op, version);
            let headers = self.started(op, Some(location));
            return (StatusCode::ACCEPTED, headers, Value::Null);
        }
        if let Some(r) = self.resources.get_mut(id) {
            r["properties"]["provisioningState"] = json!("Deleting");
        }
        let (op, location) =
            self.start_operation(base, &namespace, version, Finish::Deleted(id.to_owned()));
        let headers = self.started(op, Some(location));
        (StatusCode::ACCEPTED, headers, Value::Null)
    }

    fn operation(&mut self, id: &str, result: bool, version: &str) -> Reply {
        let Some(op) = self.operations.get(id).cloned() else {
            return arm_error(StatusCode::NOT_FOUND, "NotFound", "no such operation");
        };
        if version != op.version {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidApiVersionParameter",
                &format!(
                    "The api-version '{version}' is invalid. The supported versions are '{}'.",
                    op.version
                ),
            );
        }
        let wait = vec![("retry-after".to_owned(), self.retry_after.to_string())];
        if result {
            return match op.finished {
                true => (StatusCode::OK, Vec::new(), Value::Null),
                false => (StatusCode::ACCEPTED, wait, Value::Null),
            };
        }
        match (&op.finish, op.finished) {
            (_, false) => (StatusCode::OK, wait, json!({"status": "InProgress"})),
            (Finish::Fails(_, code, message) | Finish::StartFails(_, code, message), true) => (
                StatusCode::OK,
                Vec::new(),
                json!({"status": "Failed", "error": {"code": code, "message": message}}),
            ),
            (Finish::Preempted, true) => (
                StatusCode::OK,
                Vec::new(),
                json!({"status": "Failed", "error": {"code": "OperationPreempted",
                    "message": "Operation execution has been preempted by a more recent operation."}}),
            ),
            (_, true) => (StatusCode::OK, Vec::new(), json!({"status": "Succeeded"})),
        }
    }

    fn list(&self, base: &str, collection: &str, query: &str, version: &str) -> Reply {
        let skip: usize = query
            .split('&')
            .find_map(|p| p.strip_prefix("$skiptoken="))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let prefix = format!("{collection}/");
        let all: Vec<&Value> = self
            .resources
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
            .map(|(_, v)| v)
            .collect();
        let size = self.page_size.max(1);
        let page: Vec<Value> = all.iter().skip(skip).take(size).map(|v| shown(v)).collect();
        let mut body = json!({ "value": page });
        if skip + size < all.len() {
            let base = self.link_base.as_deref().unwrap_or(base);
            body["nextLink"] = json!(format!(
                "{base}{collection}?api-version={version}&$skiptoken={}",
                skip + size
            ));
        }
        (StatusCode::OK, Vec::new(), body)
    }

    #[allow(clippy::too_many_arguments)]
    fn put(
        &mut self,
        base: &str,
        id: &str,
        path: &str,
        kind: &str,
        name: &str,
        version: &str,
        body: &Value,
    ) -> Reply {
        if let Err(reply) = validate(&self.resources, kind, body) {
            return reply;
        }
        let existed = self.resources.get(id).cloned();
        let vm = kind == "microsoft.compute/virtualmachines";
        let short = if vm && existed.is_none() {
            self.shortage(body, true)
        } else {
            None
        };
        if let Some(s) = &short
            && s.code == ShortageCode::SkuNotAvailable
        {
            return s.refusal(body);
        }
        if let Some(old) = &existed
            && kind == "microsoft.compute/virtualmachines"
            && let Some(refused) = immutable_changed(old, body)
        {
            return refused;
        }
        let mut resource = body.clone();
        resource["id"] = json!(path);
        resource["name"] = json!(name);
        resource["type"] = json!(kind);
        // An update of a resource still being created leaves it being created.
        let state = match &existed {
            None => json!("Creating"),
            Some(old) if old["properties"]["provisioningState"] == "Creating" => json!("Creating"),
            Some(_) => json!("Succeeded"),
        };
        resource["properties"]["provisioningState"] = state;
        if kind == "microsoft.network/networkinterfaces" {
            let n = self.resources.len();
            resource["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"] =
                json!(format!("10.0.{}.{}", n / 250, n % 250 + 4));
            if let Some(old) = &existed {
                resource["properties"]["virtualMachine"] =
                    old["properties"]["virtualMachine"].clone();
            }
        }
        if kind == "microsoft.compute/virtualmachines" && existed.is_none() {
            self.attach(id, body);
        }
        self.resources.insert(id.to_owned(), resource.clone());
        if existed.is_some() {
            return (StatusCode::OK, Vec::new(), shown(&resource));
        }
        let finish = match (kind, &self.vm_create_failure, short) {
            (_, _, Some(s)) => Finish::Fails(id.to_owned(), s.code.as_str().into(), s.message()),
            ("microsoft.compute/virtualmachines", Some((code, message)), None) => {
                Finish::Fails(id.to_owned(), code.clone(), message.clone())
            }
            _ => Finish::Created(id.to_owned()),
        };
        let namespace = kind.split('/').next().unwrap_or_default().to_owned();
        let (op, _) = self.start_operation(base, &namespace, version, finish);
        let headers = self.started(op, None);
        (StatusCode::CREATED, headers, shown(&resource))
    }

    /// A new VM: its OS disk is made (managed by the VM, without the VM's tags, as ARM does)
    /// and its NICs are attached to it.
    fn attach(&mut self, id: &str, body: &Value) {
        let rg = id
            .split("/providers/")
            .next()
            .unwrap_or_default()
            .to_owned();
        let disk = body["properties"]["storageProfile"]["osDisk"]["name"]
            .as_str()
            .unwrap_or("osdisk")
            .to_ascii_lowercase();
        let disk_id = format!("{rg}/providers/microsoft.compute/disks/{disk}");
        self.resources.insert(
            disk_id.clone(),
            json!({"id": disk_id, "name": disk, "type": "microsoft.compute/disks",
                "location": body["location"], "managedBy": id, "properties": {"provisioningState": "Succeeded"}}),
        );
        let nics = get(body, &["properties", "networkProfile", "networkInterfaces"])
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for nic in nics {
            let nic_id = nic["id"].as_str().unwrap_or_default().to_ascii_lowercase();
            if let Some(n) = self.resources.get_mut(&nic_id) {
                n["properties"]["virtualMachine"] = json!({ "id": id });
            }
        }
    }
}
