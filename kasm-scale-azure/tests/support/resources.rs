//! The resource side of the ARM test server: virtual machines, network interfaces, public IPs and
//! managed disks of resource groups, stored in memory, with the api-versions, required fields,
//! error bodies, asynchronous operations, paging and delete options of Azure's REST reference.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

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

/// What finishes when an operation completes.
#[derive(Debug, Clone)]
pub(crate) enum Finish {
    Created(String),
    Deleted(String),
    Fails(String, String),
}

#[derive(Debug, Clone)]
pub(crate) struct Operation {
    done_at: Instant,
    finish: Finish,
    finished: bool,
}

/// The stored resources and operations.
#[derive(Debug, Default)]
pub struct Store {
    /// Resources by lower-case id.
    pub resources: BTreeMap<String, Value>,
    pub(crate) operations: BTreeMap<String, Operation>,
    /// How long operations run.
    pub lro_delay: Duration,
    /// List page size.
    pub page_size: usize,
    /// Faults waiting to be served.
    pub faults: Vec<Fault>,
    /// `x-ms-ratelimit-remaining-subscription-writes` sent with every answer, when set.
    pub remaining_writes: Option<i64>,
    /// Every request: method, path, api-version, body.
    pub requests: Vec<(Method, String, String, Value)>,
    /// The VM create fails with this code when set (an allocation failure, say).
    pub vm_create_failure: Option<(String, String)>,
}

/// api-version per resource type, as pinned by the provider.
fn api_version_of(kind: &str) -> Option<&'static str> {
    match kind {
        "microsoft.compute/virtualmachines" | "microsoft.compute/disks" => Some("2024-07-01"),
        "microsoft.network/networkinterfaces" | "microsoft.network/publicipaddresses" => {
            Some("2024-05-01")
        }
        _ => None,
    }
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

impl Store {
    /// Completes the operations that are due.
    fn settle(&mut self) {
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
                    }
                }
                Finish::Deleted(rid) => self.delete_now(&rid),
                Finish::Fails(..) => {}
            }
        }
    }

    /// Removes a resource and what its delete options take with it.
    fn delete_now(&mut self, id: &str) {
        let Some(r) = self.resources.remove(id) else {
            return;
        };
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

    fn start_operation(&mut self, base: &str, finish: Finish) -> (String, String) {
        let id = format!("op-{}", self.operations.len() + 1);
        self.operations.insert(
            id.clone(),
            Operation {
                done_at: Instant::now() + self.lro_delay,
                finish,
                finished: false,
            },
        );
        (
            format!("{base}/operations/{id}?api-version=2024-07-01"),
            format!("{base}/operations/{id}/result?api-version=2024-07-01"),
        )
    }

    /// Serves a request under `/subscriptions/…` or `/operations/…`.
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
        if let ["operations", id, rest @ ..] = segments.as_slice() {
            return self.operation(id, rest.first() == Some(&"result"));
        }
        // /subscriptions/{s}/resourcegroups/{rg}/providers/{ns}/{type}[/{name}]
        let (kind, name) = match segments.as_slice() {
            ["subscriptions", _, "resourcegroups", _, "providers", ns, t] => {
                (format!("{ns}/{t}"), None)
            }
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                ns,
                t,
                n,
            ] => (format!("{ns}/{t}"), Some(n.to_string())),
            _ => {
                return arm_error(
                    StatusCode::NOT_FOUND,
                    "InvalidResourceType",
                    &format!("no route for {path}"),
                );
            }
        };
        let Some(version) = api_version_of(&kind) else {
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
        if api_version != version {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidApiVersionParameter",
                &format!(
                    "The api-version '{api_version}' is invalid. The supported versions are '{version}'."
                ),
            );
        }
        match (method, name) {
            (&Method::GET, None) => self.list(&lower, query, version),
            (&Method::GET, Some(_)) => match self.resources.get(&lower) {
                Some(r) => (StatusCode::OK, Vec::new(), r.clone()),
                None => arm_error(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFound",
                    &format!("The Resource '{kind}/{}' was not found.", segments[7]),
                ),
            },
            (&Method::PUT, Some(n)) => self.put(base, &lower, path, &kind, &n, body),
            (&Method::DELETE, Some(_)) => {
                if !self.resources.contains_key(&lower) {
                    return (StatusCode::NO_CONTENT, Vec::new(), Value::Null);
                }
                if let Some(r) = self.resources.get_mut(&lower) {
                    r["properties"]["provisioningState"] = json!("Deleting");
                }
                let (op, location) = self.start_operation(base, Finish::Deleted(lower));
                let headers = vec![
                    ("azure-asyncoperation".into(), op),
                    ("location".into(), location),
                    ("retry-after".into(), "0".into()),
                ];
                (StatusCode::ACCEPTED, headers, Value::Null)
            }
            _ => arm_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "not supported",
            ),
        }
    }

    fn operation(&mut self, id: &str, result: bool) -> Reply {
        let Some(op) = self.operations.get(id).cloned() else {
            return arm_error(StatusCode::NOT_FOUND, "NotFound", "no such operation");
        };
        if result {
            let status = if op.finished {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            let headers = if op.finished {
                Vec::new()
            } else {
                vec![("retry-after".into(), "0".into())]
            };
            return (status, headers, Value::Null);
        }
        let body = match (&op.finish, op.finished) {
            (_, false) => json!({"status": "InProgress"}),
            (Finish::Fails(code, message), true) => {
                json!({"status": "Failed", "error": {"code": code, "message": message}})
            }
            (_, true) => json!({"status": "Succeeded"}),
        };
        (
            StatusCode::OK,
            vec![("retry-after".into(), "0".into())],
            body,
        )
    }

    fn list(&self, collection: &str, query: &str, version: &str) -> Reply {
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
        let page: Vec<Value> = all
            .iter()
            .skip(skip)
            .take(size)
            .map(|v| (*v).clone())
            .collect();
        let mut body = json!({ "value": page });
        if skip + size < all.len() {
            body["nextLink"] = json!(format!(
                "{collection}?api-version={version}&$skiptoken={}",
                skip + size
            ));
        }
        (StatusCode::OK, Vec::new(), body)
    }

    fn put(
        &mut self,
        base: &str,
        id: &str,
        path: &str,
        kind: &str,
        name: &str,
        body: &Value,
    ) -> Reply {
        if let Err(reply) = self.validate(kind, body) {
            return reply;
        }
        let mut resource = body.clone();
        resource["id"] = json!(path);
        resource["name"] = json!(name);
        resource["type"] = json!(kind);
        let existed = self.resources.contains_key(id);
        resource["properties"]["provisioningState"] =
            json!(if existed { "Succeeded" } else { "Creating" });
        if kind == "microsoft.network/networkinterfaces" {
            let n = self.resources.len();
            resource["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"] =
                json!(format!("10.0.{}.{}", n / 250, n % 250 + 4));
        }
        if kind == "microsoft.compute/virtualmachines" && !existed {
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
            self.resources.insert(disk_id.clone(), json!({"id": disk_id, "name": disk, "type": "microsoft.compute/disks", "properties": {}}));
        }
        self.resources.insert(id.to_owned(), resource.clone());
        if existed {
            return (StatusCode::OK, Vec::new(), resource);
        }
        let finish = match (kind, &self.vm_create_failure) {
            ("microsoft.compute/virtualmachines", Some((code, message))) => {
                Finish::Fails(code.clone(), message.clone())
            }
            _ => Finish::Created(id.to_owned()),
        };
        let (op, _) = self.start_operation(base, finish);
        let headers = vec![
            ("azure-asyncoperation".into(), op),
            ("retry-after".into(), "0".into()),
        ];
        (StatusCode::CREATED, headers, resource)
    }

    /// The required fields of Azure's reference for each type.
    fn validate(&self, kind: &str, body: &Value) -> Result<(), Reply> {
        let missing = |field: &str| {
            arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContent",
                &format!(
                    "The request content was invalid and could not be deserialized: Required property '{field}' not found in JSON."
                ),
            )
        };
        let require =
            |path: &[&str], field: &str| get(body, path).map(|_| ()).ok_or_else(|| missing(field));
        require(&["location"], "location")?;
        match kind {
            "microsoft.network/networkinterfaces" => {
                require(&["properties", "ipConfigurations"], "ipConfigurations")?;
                let subnet = get(body, &["properties", "ipConfigurations"])
                    .and_then(|c| c.get(0))
                    .and_then(|c| get(c, &["properties", "subnet", "id"]));
                if subnet.is_none() {
                    return Err(arm_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidRequestFormat",
                        "Subnet is required for an IP configuration.",
                    ));
                }
            }
            "microsoft.compute/virtualmachines" => {
                require(&["properties", "hardwareProfile", "vmSize"], "vmSize")?;
                require(
                    &["properties", "storageProfile", "imageReference"],
                    "imageReference",
                )?;
                require(&["properties", "osProfile", "computerName"], "computerName")?;
                require(
                    &["properties", "osProfile", "adminUsername"],
                    "adminUsername",
                )?;
                let nics = get(body, &["properties", "networkProfile", "networkInterfaces"])
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if nics.is_empty() {
                    return Err(arm_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidParameter",
                        "At least one network interface is required.",
                    ));
                }
                for nic in nics {
                    let id = nic["id"].as_str().unwrap_or_default().to_ascii_lowercase();
                    if !self.resources.contains_key(&id) {
                        return Err(arm_error(
                            StatusCode::BAD_REQUEST,
                            "InvalidResourceReference",
                            &format!("Resource {id} referenced by resource was not found."),
                        ));
                    }
                }
                if let Some(data) = get(body, &["properties", "osProfile", "customData"]) {
                    let len = data.as_str().map_or(0, str::len);
                    if len > 87_380 {
                        return Err(arm_error(
                            StatusCode::BAD_REQUEST,
                            "InvalidParameter",
                            "Custom data in OSProfile must be in Base64 encoding and with a maximum length of 87380 characters.",
                        ));
                    }
                }
                let name = get(body, &["properties", "osProfile", "computerName"])
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let windows =
                    get(body, &["properties", "osProfile", "windowsConfiguration"]).is_some();
                if windows && name.len() > 15 {
                    return Err(arm_error(
                        StatusCode::BAD_REQUEST,
                        "InvalidParameter",
                        "Windows computer name cannot be more than 15 characters long.",
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}
