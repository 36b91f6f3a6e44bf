//! The TCP readiness probe of the warm tier on a real clock and real sockets on loopback: a
//! started server whose connection port does not answer is never handed out; once something
//! listens there, the probe makes it ready and it takes the waiting session. Its guest never
//! checks in (a check-in would prove it up too): the config requires none, and no check-in is
//! delivered.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kasm_scale_core::config::VmProviderConfig;
use kasm_scale_core::controller::{Autoscaler, SessionOutcome};
use kasm_scale_core::engine::{ServerState, SessionRequest};
use kasm_scale_core::memory::MemoryCloud;
use kasm_scale_core::traits::{BackendError, Capabilities, StopMode, Vm, VmProvider, VmSpec};

use crate::fixture::Fixture;

/// The memory cloud with every VM at 127.0.0.1, so that the probe reaches this test's port.
#[derive(Debug)]
struct Loopback(Arc<MemoryCloud>);

fn here(mut vm: Vm) -> Vm {
    vm.private_ip = Some("127.0.0.1".into());
    vm
}

#[async_trait]
impl VmProvider for Loopback {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    async fn create(&self, spec: &VmSpec) -> Result<Vm, BackendError> {
        self.0.create(spec).await.map(here)
    }
    async fn destroy(&self, vm_id: &str) -> Result<(), BackendError> {
        self.0.destroy(vm_id).await
    }
    async fn get(&self, vm_id: &str) -> Result<Option<Vm>, BackendError> {
        self.0.get(vm_id).await.map(|v| v.map(here))
    }
    async fn list(&self, owner_id: &str) -> Result<Vec<Vm>, BackendError> {
        Ok(self.0.list(owner_id).await?.into_iter().map(here).collect())
    }
    async fn stop(&self, vm_id: &str, mode: StopMode) -> Result<(), BackendError> {
        VmProvider::stop(&*self.0, vm_id, mode).await
    }
    async fn start(&self, vm_id: &str) -> Result<(), BackendError> {
        VmProvider::start(&*self.0, vm_id).await
    }
    async fn resize(&self, vm_id: &str, offering: u32) -> Result<(), BackendError> {
        self.0.resize(vm_id, offering).await
    }
}

/// Ticks every 100 ms of real time until `done` or `limit`.
async fn until(scaler: &Autoscaler, limit: Duration, done: impl Fn(&Autoscaler) -> bool) -> bool {
    let began = std::time::Instant::now();
    while began.elapsed() < limit {
        scaler.tick().await;
        scaler.settle().await;
        if done(scaler) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn a_started_server_serves_only_once_its_connection_port_answers() {
    // A port nothing listens on yet (bound, then freed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = Fixture::memory_pool("p")
        // One server in all: the request can only be served by the started one.
        .max_instances(1)
        .boot_latency(1)
        .checkin_delay(0)
        .require_checkin(false)
        .checkin_timeout(600)
        .provider_toml("start_latency = { fixed = 1 }")
        .autoscale_toml(&format!(
            "connection_port = {port}\nwarm_pool = {{ min_stopped = 1, max_stopped = 1, readiness = \"tcp\" }}"
        ))
        .config();
    let VmProviderConfig::Memory(mem) = config.vm_providers[0].clone() else {
        panic!("the fixture's provider is the memory cloud")
    };
    let cloud = Arc::new(MemoryCloud::new(mem, 3));
    let scaler = Autoscaler::builder(config)
        .provider(Arc::new(Loopback(cloud.clone())))
        .seed(3)
        .queue_timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let stopped = |s: &Autoscaler| s.servers().iter().any(|x| x.state == ServerState::Stopped);
    assert!(
        until(&scaler, Duration::from_secs(20), stopped).await,
        "the tier's server is built, checked in and stopped: {:#?}",
        scaler.servers()
    );
    let outcome = scaler
        .request_session("p", &SessionRequest::default())
        .await
        .unwrap();
    assert!(
        matches!(outcome, SessionOutcome::Queued { .. }),
        "{outcome:?}"
    );
    // Started, its VM runs within a second, but its port refuses: probed, never handed out.
    let running_vm = |s: &Autoscaler| {
        s.servers()
            .iter()
            .any(|x| x.state == ServerState::Starting && x.woken_at.is_some())
    };
    assert!(until(&scaler, Duration::from_secs(10), running_vm).await);
    let never = until(&scaler, Duration::from_secs(4), |s| {
        s.servers()
            .iter()
            .any(|x| x.sessions > 0 || (x.woken_at.is_some() && x.state == ServerState::Running))
    })
    .await;
    assert!(
        !never,
        "handed out before its port answered: {:#?}",
        scaler.servers()
    );
    // Something listens on its connection port: the next probe makes it ready, and the
    // waiting request is seated there.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let accepting = tokio::spawn(async move {
        loop {
            if listener.accept().await.is_err() {
                break;
            }
        }
    });
    let seated = until(&scaler, Duration::from_secs(15), |s| {
        s.servers()
            .iter()
            .any(|x| x.sessions == 1 && x.state == ServerState::Running && x.woken_at.is_some())
    })
    .await;
    accepting.abort();
    assert!(seated, "{:#?}", scaler.servers());
}
