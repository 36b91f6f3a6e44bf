//! Parts of VMs left without their VM (an Azure NIC or disk after a create that failed
//! half-way): reconcile removes them after the orphan grace period, and never the parts of a
//! server being created.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kasm_scale_core::config::VmProviderConfig;
use kasm_scale_core::controller::Autoscaler;
use kasm_scale_core::engine::{ServerId, ServerState};
use kasm_scale_core::memory::MemoryCloud;
use kasm_scale_core::traits::{
    BackendError, Capabilities, Leftover, Owner, Vm, VmProvider, VmSpec,
};

use crate::fixture::Fixture;

fn config() -> kasm_scale_core::config::Config {
    Fixture::memory_pool("p")
        .max_instances(4)
        .boot_latency(60)
        .checkin_delay(30)
        .minimum_standby(1)
        .require_checkin(false)
        .config()
}

/// A memory cloud whose creates take `create_takes` (the VM's parts exist meanwhile).
#[derive(Debug)]
struct Slow {
    inner: Arc<MemoryCloud>,
    create_takes: Duration,
}

#[async_trait]
impl VmProvider for Slow {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn create(&self, spec: &VmSpec) -> Result<Vm, BackendError> {
        tokio::time::sleep(self.create_takes).await;
        self.inner.create(spec).await
    }
    async fn destroy(&self, vm_id: &str) -> Result<(), BackendError> {
        self.inner.destroy(vm_id).await
    }
    async fn get(&self, vm_id: &str) -> Result<Option<Vm>, BackendError> {
        self.inner.get(vm_id).await
    }
    async fn list(&self, owner_id: &str) -> Result<Vec<Vm>, BackendError> {
        self.inner.list(owner_id).await
    }
    async fn list_leftovers(&self, owner_id: &str) -> Result<Vec<Leftover>, BackendError> {
        self.inner.list_leftovers(owner_id).await
    }
    async fn remove_leftover(&self, id: &str) -> Result<(), BackendError> {
        self.inner.remove_leftover(id).await
    }
}

fn owner(server_id: ServerId) -> Owner {
    Owner {
        owner_id: "kasm-scale".into(),
        pool: "p".into(),
        config: "c".into(),
        server_id,
    }
}

#[tokio::test(start_paused = true)]
async fn leftover_parts_go_after_the_grace_period_but_not_those_of_a_server_being_created() {
    let config = config();
    let VmProviderConfig::Memory(m) = config.vm_providers[0].clone() else {
        panic!("memory provider expected")
    };
    let cloud = Arc::new(MemoryCloud::new(m, 5));
    let slow = Arc::new(Slow {
        inner: cloud.clone(),
        create_takes: Duration::from_secs(900),
    });
    let scaler = Autoscaler::builder(config)
        .provider(slow)
        .orphan_grace(Duration::from_secs(300))
        .reconcile_every(1)
        .call_timeout(Duration::from_secs(3600))
        .epoch("2026-12-01T08:00:00Z".parse().unwrap())
        .build()
        .unwrap();
    // A part of a server no one knows (another process died after making it), and one of
    // a foreign owner.
    let stray = cloud.leave_part(
        owner(ServerId(uuid::Uuid::from_u128(
            0x5eed_0000_0000_4000_8000_0000_0000_0001,
        ))),
        "networkInterface",
    );
    let foreign = cloud.leave_part(
        Owner {
            owner_id: "someone-else".into(),
            ..owner(ServerId(uuid::Uuid::from_u128(
                0x5eed_0000_0000_4000_8000_0000_0000_0002,
            )))
        },
        "disk",
    );
    scaler.tick().await;
    let creating = scaler
        .servers()
        .into_iter()
        .find(|s| s.state == ServerState::Provisioning)
        .expect("a server being created");
    // Its NIC exists before its VM does.
    let nic = cloud.leave_part(owner(creating.id), "networkInterface");

    let mut seen_stray_until = Duration::ZERO;
    let start = tokio::time::Instant::now();
    for _ in 0..80 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        scaler.tick().await;
        tokio::task::yield_now().await;
        let parts = cloud.parts();
        if parts.contains(&stray) {
            seen_stray_until = start.elapsed();
        }
        if start.elapsed() < Duration::from_secs(900) {
            assert!(
                parts.contains(&nic),
                "the NIC of a server being created stays (at {:?})",
                start.elapsed()
            );
            assert_eq!(
                scaler
                    .servers()
                    .iter()
                    .find(|s| s.id == creating.id)
                    .map(|s| s.state),
                Some(ServerState::Provisioning)
            );
        }
    }
    scaler.settle().await;
    let parts = cloud.parts();
    assert!(!parts.contains(&stray), "the stray part is removed");
    assert!(
        seen_stray_until >= Duration::from_secs(290),
        "not before the grace period: gone after {seen_stray_until:?}"
    );
    assert!(parts.contains(&foreign), "another owner's part is not ours");
    assert!(
        parts.contains(&nic),
        "the NIC belongs to the VM once it exists"
    );
}
