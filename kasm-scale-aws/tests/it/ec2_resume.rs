//! A create resumed after the controller died, on EC2's client-token rules (the strict front of
//! the test proxy: moto ignores client tokens, EC2 answers a token reused with other parameters
//! with `IdempotentParameterMismatch`).
//!
//! A controller is killed at each step of provisioning a server with an AD record: record
//! saved; AD record made; RunInstances sent but not received; RunInstances taken by EC2, its
//! answer lost; answer received but not saved; answer saved. "Killed" is what a dead process
//! leaves: its background work stops where it was (dropped), and nothing it would save after
//! that lands (the store is frozen at that moment). A second controller starts on the same
//! cloud, directory and store, while EC2's listing does not show the new instance yet (EC2 is
//! eventually consistent: a restart right after the launch, or a failover while the old
//! leader's call is in flight, lists nothing), so it resumes the create.
//!
//! In the end there is exactly one VM per server and none of any other server, and each VM's
//! guest checks in with the token its user data carries (read back from EC2) and can join the
//! domain with the password its user data carries (the AD record was not reset under it).

use crate::support;

use std::collections::BTreeMap;
use std::future::pending;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kasm_scale_aws::AwsProvider;
use kasm_scale_core::config::{Config, Format, VmProviderConfig};
use kasm_scale_core::controller::{Autoscaler, CheckinStatus, Records};
use kasm_scale_core::memory::MemoryStore;
use kasm_scale_core::memory::{MemoryDirectory, token_in};
use kasm_scale_core::token::TokenKeys;
use kasm_scale_core::traits::{
    BackendError, ComputerRecord, ComputerSpec, DirectoryService, OWNER_TAG, SERVER_TAG,
};
use kasm_scale_core::traits::{StateStore, StoreError};
use kasm_scale_core::{Secret, load_str};
use support::{Fault, Proxy, endpoint, raw_client, user_data};

const CONTAINER: &str = "OU=Kasm,DC=example,DC=local";

/// Where the first controller dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Its record saved, before the AD record is made.
    BeforeAd,
    /// The AD record made, before anything else.
    AfterAd,
    /// RunInstances sent, never received by EC2.
    BeforeEc2,
    /// RunInstances taken by EC2, the answer not received.
    AfterEc2,
    /// The answer received, not saved.
    AnswerUnsaved,
    /// The answer received and saved.
    AnswerSaved,
}

/// A store whose saves stop landing once frozen (the process died): a frozen save never ends.
#[derive(Debug)]
struct Store {
    inner: MemoryStore,
    frozen: Arc<AtomicBool>,
}

#[async_trait]
impl StateStore for Store {
    async fn load(&self) -> Result<Option<Records>, StoreError> {
        self.inner.load().await
    }

    async fn save(&self, records: &Records) -> Result<(), StoreError> {
        if self.frozen.load(Ordering::SeqCst) {
            return pending().await;
        }
        self.inner.save(records).await
    }
}

/// The in-memory directory, with a cut before or after making the record.
#[derive(Debug)]
struct Directory {
    inner: Arc<MemoryDirectory>,
    /// `Some(true)`: cut after making it; `Some(false)`: before.
    cut_after: Option<bool>,
    reached: Arc<AtomicBool>,
}

#[async_trait]
impl DirectoryService for Directory {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn domain(&self) -> &str {
        self.inner.domain()
    }

    async fn create_computer(&self, spec: &ComputerSpec) -> Result<Secret, BackendError> {
        if self.cut_after == Some(false) {
            self.reached.store(true, Ordering::SeqCst);
            return pending().await;
        }
        let password = self.inner.create_computer(spec).await?;
        if self.cut_after == Some(true) {
            self.reached.store(true, Ordering::SeqCst);
            return pending().await;
        }
        Ok(password)
    }

    async fn delete_computer(
        &self,
        container_dn: &str,
        name: &str,
        recursive: bool,
    ) -> Result<(), BackendError> {
        self.inner
            .delete_computer(container_dn, name, recursive)
            .await
    }

    async fn list_computers(
        &self,
        owner_id: &str,
        containers: &[String],
    ) -> Result<Vec<ComputerRecord>, BackendError> {
        self.inner.list_computers(owner_id, containers).await
    }
}

/// The test's configuration: one server with an AD record, on EC2 in `region` through `url`.
fn config(region: &str, url: &str, ad: bool) -> Config {
    let ad_lines = if ad {
        format!(
            "ad_create_machine_record = true\nldap_id = \"ad\"\nad_computer_container_dn = \"{CONTAINER}\"\n"
        )
    } else {
        String::new()
    };
    let text = format!(
        r##"
[[zones]]
zone_name = "default"
upstream_auth_address = "kasm.example.com"

[[ldap_configs]]
name = "ad"
url = "ldaps://dc1.example.local"
search_base = "DC=example,DC=local"
service_account_dn = "svc@example.local"
service_account_password = "pw"

[[vm_providers]]
provider = "aws"
name = "vm"
aws_access_key_id = "AKIATESTTESTTESTTEST"
aws_secret_access_key = "test-secret"
aws_region = "{region}"
aws_ec2_ami_id = "ami-12c6146b"
aws_ec2_instance_type = "t3.micro"
aws_endpoint_url = "{url}"
max_instances = 10
startup_script = "#!/bin/sh\nTOKEN={{checkin_jwt}}\nDOMAIN={{domain}}\nJOIN={{ad_join_credential}}\n"

[[pools]]
server_pool_name = "p"

[[pools.autoscale]]
autoscale_config_name = "c"
vm_provider_config_id = "vm"
connection_type = "RDP"
minimum_pool_standby_sessions = 1
require_checkin = true
checkin_timeout = 3600
{ad_lines}
"##
    );
    load_str(&text, Format::Toml)
        .unwrap_or_else(|e| panic!("the test's configuration: {e}"))
        .config
}

/// One controller: a fresh provider (a new process remembers no attempt), the given store,
/// directory and keys.
async fn controller(
    config: &Config,
    owner: &str,
    store: Store,
    directory: Directory,
    keys: &TokenKeys,
) -> Autoscaler {
    let VmProviderConfig::Aws(aws) = config.vm_providers[0].clone() else {
        panic!("an AWS provider")
    };
    let provider = AwsProvider::builder(aws)
        .attempt_timeout(Duration::from_secs(20))
        .build()
        .await
        .unwrap();
    Autoscaler::builder(config.clone())
        .owner_id(owner)
        .provider(Arc::new(provider))
        .directory(Arc::new(directory))
        .store(Arc::new(store))
        .tokens(keys.clone())
        .reconcile_every(1)
        // Long: a VM left without a server stays to be counted, not quietly destroyed.
        .orphan_grace(Duration::from_secs(3600))
        .build()
        .unwrap()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..300 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not reached within 30 s: {what}");
}

/// What the proxy does with RunInstances and listings.
#[derive(Debug, Default)]
struct Plan {
    /// The cut for the first RunInstances (phase 1).
    run: Option<Fault>,
    /// Freeze the store when RunInstances arrives.
    freeze_on_run: bool,
    /// Listings (DescribeInstances by filter) still to answer empty (EC2 not showing the new
    /// instance yet).
    hide_lists: usize,
}

/// The live instances of `owner` in `region`, with their server-id tags.
async fn instances(client: &aws_sdk_ec2::Client, owner: &str) -> BTreeMap<String, String> {
    let page = client
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name(format!("tag:{OWNER_TAG}"))
                .values(owner)
                .build(),
        )
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("instance-state-name")
                .values("pending")
                .values("running")
                .build(),
        )
        .send()
        .await
        .expect("describe");
    page.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            let server = i
                .tags()
                .iter()
                .find(|t| t.key() == Some(SERVER_TAG))
                .and_then(|t| t.value())
                .unwrap_or_default()
                .to_owned();
            (i.instance_id().unwrap_or_default().to_owned(), server)
        })
        .collect()
}

/// The line `NAME=…` of a script.
fn line<'a>(script: &'a str, name: &str) -> &'a str {
    script
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in the user data"))
}

/// What EC2's rules saw: RunInstances received, answered from memory (a repeat with the same
/// parameters), refused as mismatched.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    runs: usize,
    repeats: usize,
    mismatches: usize,
}

/// Kills a first controller (with `keys`) at `step`, resumes with a second (with
/// `second_keys`), and checks the end.
async fn resume_after(
    step: Step,
    region: &str,
    ad: bool,
    keys: TokenKeys,
    second_keys: TokenKeys,
) -> Option<Counts> {
    let url = endpoint()?;
    let owner = format!("ec2-resume-{}", uuid::Uuid::new_v4());
    let plan: Arc<Mutex<Plan>> = Arc::default();
    let frozen = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicUsize::new(0));
    let proxy = {
        let (plan, frozen, runs) = (plan.clone(), frozen.clone(), runs.clone());
        let empty = "<DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>hidden</requestId><reservationSet/></DescribeInstancesResponse>".to_owned();
        Proxy::strict(&url, move |seen| {
            let mut plan = plan.lock().unwrap();
            match seen.action.as_str() {
                "RunInstances" => {
                    runs.fetch_add(1, Ordering::SeqCst);
                    if plan.freeze_on_run {
                        frozen.store(true, Ordering::SeqCst);
                    }
                    plan.run.take().unwrap_or(Fault::Forward)
                }
                "DescribeInstances"
                    if support::instance_ids(&seen.body).is_empty() && plan.hide_lists > 0 =>
                {
                    plan.hide_lists -= 1;
                    Fault::Answer(200, empty.clone())
                }
                _ => Fault::Forward,
            }
        })
        .await
    };
    let config = config(region, &proxy.url, ad);
    let memory = MemoryStore::default();
    let ad_directory = Arc::new(MemoryDirectory::new("ad", "example.local", 7));
    let reached = Arc::new(AtomicBool::new(false));
    let cut_after = match step {
        Step::BeforeAd => Some(false),
        Step::AfterAd => Some(true),
        _ => None,
    };
    {
        let mut plan = plan.lock().unwrap();
        plan.run = match step {
            Step::BeforeEc2 => Some(Fault::Hang),
            Step::AfterEc2 => Some(Fault::ForwardThenHang),
            _ => None,
        };
        plan.freeze_on_run = matches!(step, Step::BeforeEc2 | Step::AfterEc2 | Step::AnswerUnsaved);
    }
    let first = controller(
        &config,
        &owner,
        Store {
            inner: memory.clone(),
            frozen: frozen.clone(),
        },
        Directory {
            inner: ad_directory.clone(),
            cut_after,
            reached: reached.clone(),
        },
        &keys,
    )
    .await;
    let ticking = tokio::spawn({
        let first = first.clone();
        async move { first.tick().await }
    });
    match step {
        Step::BeforeAd | Step::AfterAd => {
            until("the AD cut", || reached.load(Ordering::SeqCst)).await;
        }
        Step::BeforeEc2 => until("RunInstances", || proxy.count("RunInstances") == 1).await,
        Step::AfterEc2 => until("EC2's answer", || proxy.answered("RunInstances") == 1).await,
        Step::AnswerUnsaved => {
            until("the VM id in memory", || {
                first.servers().iter().any(|s| s.vm_id.is_some())
            })
            .await;
        }
        Step::AnswerSaved => {
            until("the VM id in memory", || {
                first.servers().iter().any(|s| s.vm_id.is_some())
            })
            .await;
            first.save().await;
            let stored = memory.load().await.unwrap().expect("saved");
            assert!(stored.servers.values().all(|s| s.vm_id.is_some()), "saved");
        }
    }
    // Killed.
    frozen.store(true, Ordering::SeqCst);
    ticking.abort();
    let _ = ticking.await;
    drop(first);
    let saved = memory.load().await.unwrap().expect("the record was saved");
    assert_eq!(saved.servers.len(), 1, "{step:?}: one server record saved");

    // The next controller: EC2 does not list the new instance at first.
    plan.lock().unwrap().hide_lists = 1;
    let second = controller(
        &config,
        &owner,
        Store {
            inner: memory.clone(),
            frozen: Arc::new(AtomicBool::new(false)),
        },
        Directory {
            inner: ad_directory.clone(),
            cut_after: None,
            reached: Arc::default(),
        },
        &second_keys,
    )
    .await;
    let mut events = second.subscribe();
    for _ in 0..100 {
        second.tick().await;
        second.settle().await;
        let servers = second.servers();
        if !servers.is_empty() && servers.iter().all(|s| s.vm_id.is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two more rounds: the listing now shows every instance, and reconcile judges them.
    for _ in 0..2 {
        second.tick().await;
        second.settle().await;
    }
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        let e = format!("{e:?}");
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    let servers = second.servers();
    let raw = raw_client(&url, region);
    let vms = instances(&raw, &owner).await;
    let known: BTreeMap<String, String> = servers
        .iter()
        .map(|s| (s.id.to_string(), s.vm_id.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        servers.len(),
        1,
        "{step:?}: one server: {servers:#?}\nVMs: {vms:?}\nevents: {seen:#?}"
    );
    let per_server: BTreeMap<&String, usize> = vms.values().fold(BTreeMap::new(), |mut m, s| {
        *m.entry(s).or_default() += 1;
        m
    });
    for (vm, server) in &vms {
        assert_eq!(
            known.get(server),
            Some(vm),
            "{step:?}: VM {vm} of server {server} is not a known server's VM: known {known:?}, VMs {vms:?}"
        );
    }
    for id in known.keys() {
        assert_eq!(
            per_server.get(id).copied(),
            Some(1),
            "{step:?}: server {id} has one VM: {vms:?}"
        );
    }
    let server = &servers[0];
    // The guest: its user data as EC2 holds it, its token through the controller, its join.
    let script = user_data(&raw, server.vm_id.as_deref().unwrap()).await;
    let token = token_in(line(&script, "TOKEN")).expect("a token in the user data");
    let accepted = second
        .check_in_token(token, &CheckinStatus::running())
        .await;
    assert!(
        accepted.is_ok(),
        "{step:?}: the guest's check-in with the token of its user data: {accepted:?}"
    );
    if ad {
        let join = line(&script, "JOIN");
        assert!(
            ad_directory.can_join(CONTAINER, &server.hostname, join),
            "{step:?}: the AD record was reset under the VM (its user data's password no longer joins)"
        );
        assert_eq!(ad_directory.record_count(), 1, "{step:?}: one AD record");
        assert!(
            server.ad_join.is_none(),
            "{step:?}: the sealed join password is dropped once the VM is known"
        );
    }
    // Leave the emulator as found.
    drop(second);
    raw.terminate_instances()
        .set_instance_ids(Some(vms.keys().cloned().collect()))
        .send()
        .await
        .expect("terminate");
    let table = proxy.table.as_ref().unwrap();
    let counts = Counts {
        runs: runs.load(Ordering::SeqCst),
        repeats: table.repeats(),
        mismatches: table.mismatches(),
    };
    eprintln!("{step:?}: {counts:?}");
    Some(counts)
}

fn keys() -> TokenKeys {
    TokenKeys::generate().unwrap()
}

/// Resumed with the same key: the same request again (EC2 answers it from memory when it had
/// taken the first), never a mismatch.
async fn same_key(step: Step, region: &str, ad: bool, runs: usize, repeats: usize) {
    let k = keys();
    if let Some(counts) = resume_after(step, region, ad, k.clone(), k).await {
        assert_eq!(
            counts,
            Counts {
                runs,
                repeats,
                mismatches: 0
            },
            "{step:?}"
        );
    }
}

#[tokio::test]
async fn killed_before_the_ad_record() {
    same_key(Step::BeforeAd, "eu-central-2", true, 1, 0).await;
}

#[tokio::test]
async fn killed_after_the_ad_record() {
    same_key(Step::AfterAd, "me-south-1", true, 1, 0).await;
}

#[tokio::test]
async fn killed_before_ec2_received_run_instances() {
    same_key(Step::BeforeEc2, "me-central-1", true, 2, 0).await;
}

#[tokio::test]
async fn killed_after_ec2_took_run_instances() {
    same_key(Step::AfterEc2, "af-south-1", true, 2, 1).await;
}

#[tokio::test]
async fn killed_with_the_answer_unsaved() {
    same_key(Step::AnswerUnsaved, "ap-east-1", true, 2, 1).await;
}

#[tokio::test]
async fn killed_with_the_answer_saved() {
    same_key(Step::AnswerSaved, "ap-south-2", true, 1, 0).await;
}

#[tokio::test]
async fn killed_after_ec2_took_run_instances_without_ad() {
    same_key(Step::AfterEc2, "ap-southeast-3", false, 2, 1).await;
}

/// Two Ed25519 keys of the tests (not secrets of anything); the public half of the first.
const KEY_A: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIGgzqUJeSDDl1P4gqelrWTsNCCUmIt3j7KCDLx/8PNym\n-----END PRIVATE KEY-----\n";
const PUBLIC_A: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAnGX8idhsJWF/p/P+mXYs1XQmeQFPQwcfys9iSJJgPIg=\n-----END PUBLIC KEY-----\n";
const KEY_B: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIEhaY4F4ftaplnARKb+iG/5FWAzBGEnHn2ktrn7kw7OW\n-----END PRIVATE KEY-----\n";

/// Key B signing, key A (as given) verifying.
fn rotated(previous: &str) -> TokenKeys {
    let mut keys = TokenKeys::ed25519_pem(&Secret::new(KEY_B)).unwrap();
    keys.add_previous(&Secret::new(previous)).unwrap();
    keys
}

fn key_a() -> TokenKeys {
    TokenKeys::ed25519_pem(&Secret::new(KEY_A)).unwrap()
}

/// The key rotated across the crash, the old one kept as a public key: the saved join password
/// cannot be opened, so the AD record is left alone and the first attempt's VM (listed by its
/// server-id tag) is taken as the server's; its guest checks in with the old key's token.
#[tokio::test]
async fn killed_after_ec2_took_run_instances_then_the_key_rotated() {
    let counts = resume_after(
        Step::AfterEc2,
        "ap-northeast-3",
        true,
        key_a(),
        rotated(PUBLIC_A),
    )
    .await;
    if let Some(counts) = counts {
        assert_eq!(
            counts,
            Counts {
                runs: 1,
                repeats: 0,
                mismatches: 0
            }
        );
    }
}

/// The same, the old key kept as a private key: the join password opens, the token differs
/// (the new key signs), EC2 refuses the client token's reuse, and the provider takes the
/// instance EC2 launched for it.
#[tokio::test]
async fn killed_after_ec2_took_run_instances_then_the_key_rotated_keeping_the_private_key() {
    let counts = resume_after(
        Step::AfterEc2,
        "il-central-1",
        true,
        key_a(),
        rotated(KEY_A),
    )
    .await;
    if let Some(counts) = counts {
        assert_eq!(
            counts,
            Counts {
                runs: 2,
                repeats: 0,
                mismatches: 1
            }
        );
    }
}

/// Without AD, a rotated key changes the token only: the mismatch path again.
#[tokio::test]
async fn killed_after_ec2_took_run_instances_without_ad_then_the_key_rotated() {
    let counts = resume_after(
        Step::AfterEc2,
        "ca-west-1",
        false,
        key_a(),
        rotated(PUBLIC_A),
    )
    .await;
    if let Some(counts) = counts {
        assert_eq!(
            counts,
            Counts {
                runs: 2,
                repeats: 0,
                mismatches: 1
            }
        );
    }
}
