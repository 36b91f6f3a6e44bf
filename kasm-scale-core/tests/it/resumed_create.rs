//! A create resumed after the controller died once its VM was asked for (in-memory cloud and
//! directory; the EC2 tests check the same against EC2's client-token rules). The resumed
//! create renders the same startup script: the AD record is not reset under the VM, whose
//! guest joins with the password and checks in with the token its script carries.

use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use kasm_scale_core::config::{Config, VmProviderConfig};
use kasm_scale_core::controller::{Autoscaler, CheckinStatus};
use kasm_scale_core::memory::MemoryStore;
use kasm_scale_core::memory::{MemoryCloud, MemoryDirectory, token_in};
use kasm_scale_core::token::TokenKeys;
use kasm_scale_core::traits::{BackendError, Capabilities, Vm, VmProvider, VmSpec};

use crate::fixture::Fixture;

const CONTAINER: &str = "OU=Kasm,DC=example,DC=local";

fn config() -> Config {
    Fixture::memory_pool("p")
        .startup_script("TOKEN={checkin_jwt}\nJOIN={ad_join_credential}\n")
        .boot_latency(60)
        .checkin_delay(604800)
        .active_directory()
        .autoscale("ad_computer_container_dn", CONTAINER)
        .minimum_standby(1)
        .require_checkin(true)
        .checkin_timeout(3600)
        .config()
}

/// The cloud, cut after it took the create (the answer never comes back) while `cut` is set.
#[derive(Debug)]
struct Cut {
    cloud: Arc<MemoryCloud>,
    cut: AtomicBool,
    taken: AtomicBool,
}

#[async_trait]
impl VmProvider for Cut {
    fn name(&self) -> &str {
        self.cloud.name()
    }

    fn capabilities(&self) -> Capabilities {
        self.cloud.capabilities()
    }

    async fn create(&self, spec: &VmSpec) -> Result<Vm, BackendError> {
        let vm = self.cloud.create(spec).await?;
        if self.cut.load(Ordering::SeqCst) {
            self.taken.store(true, Ordering::SeqCst);
            return pending().await;
        }
        Ok(vm)
    }

    async fn destroy(&self, vm_id: &str) -> Result<(), BackendError> {
        self.cloud.destroy(vm_id).await
    }

    async fn get(&self, vm_id: &str) -> Result<Option<Vm>, BackendError> {
        self.cloud.get(vm_id).await
    }

    async fn list(&self, owner_id: &str) -> Result<Vec<Vm>, BackendError> {
        // The restarted controller's first listing does not show the new VM yet (clouds are
        // eventually consistent): it resumes the create rather than adopting the VM.
        if !self.cut.load(Ordering::SeqCst) && !self.taken.swap(false, Ordering::SeqCst) {
            return self.cloud.list(owner_id).await;
        }
        Ok(Vec::new())
    }
}

fn build(
    config: &Config,
    provider: &Arc<Cut>,
    directory: &Arc<MemoryDirectory>,
    store: &MemoryStore,
    keys: &TokenKeys,
) -> Autoscaler {
    Autoscaler::builder(config.clone())
        .provider(provider.clone())
        .directory(directory.clone())
        .store(Arc::new(store.clone()))
        .tokens(keys.clone())
        .reconcile_every(1)
        .orphan_grace(Duration::from_secs(3600))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_resumed_create_does_not_reset_the_ad_record_under_its_vm() {
    let config = config();
    let VmProviderConfig::Memory(m) = config.vm_providers[0].clone() else {
        panic!("a memory provider")
    };
    let cloud = Arc::new(MemoryCloud::new(m, 1));
    let provider = Arc::new(Cut {
        cloud: cloud.clone(),
        cut: AtomicBool::new(true),
        taken: AtomicBool::new(false),
    });
    let directory = Arc::new(MemoryDirectory::new("ad", "example.local", 1));
    let store = MemoryStore::default();
    let keys = TokenKeys::generate().unwrap();

    let first = build(&config, &provider, &directory, &store, &keys);
    first.tick().await;
    for _ in 0..100 {
        if provider.taken.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        provider.taken.load(Ordering::SeqCst),
        "the cloud took the create"
    );
    // Killed: its work stops, what it did not save is lost.
    drop(first);
    provider.cut.store(false, Ordering::SeqCst);

    let second = build(&config, &provider, &directory, &store, &keys);
    for _ in 0..5 {
        second.tick().await;
        second.settle().await;
    }
    let servers = second.servers();
    assert_eq!(servers.len(), 1, "{servers:#?}");
    let server = &servers[0];
    let vm = server.vm_id.as_deref().expect("the server has its VM");
    assert_eq!(cloud.vm_count(), 1, "one VM");
    let script = cloud.startup_script(vm).expect("its script");
    let script = script.expose();
    let join = script
        .lines()
        .find_map(|l| l.strip_prefix("JOIN="))
        .expect("a join password");
    assert!(
        directory.can_join(CONTAINER, &server.hostname, join),
        "the AD record was reset under the VM: the password its script holds no longer joins"
    );
    let token = token_in(script).expect("a token");
    let checked = second
        .check_in_token(token, &CheckinStatus::running())
        .await;
    assert!(checked.is_ok(), "{checked:?}");
}
