//! Who retries LDAP calls: the controller, as for every backend. The directory makes one
//! attempt per call (a dropped connection is a transient error, not a hidden loop), and the
//! controller's retry policy carries a create through a DC that drops connections for a while
//! (restarting, or behind a load balancer that has not noticed it is back).

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{TempOu, config, dc, spec, unique};
use kasm_scale_core::config::VmProviderConfig;
use kasm_scale_core::controller::{Autoscaler, Event, RetryPolicy};
use kasm_scale_core::memory::MemoryCloud;
use kasm_scale_core::testkit::Fixture;
use kasm_scale_core::traits::{BackendError, DirectoryService};
use kasm_scale_ldap::LdapDirectory;

/// A loopback endpoint in front of the DC that closes its first `drops` connections at once
/// (the DC is restarting) and forwards the ones after.
struct Flaky {
    url: String,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Flaky {
    async fn start(target_url: &str, drops: usize) -> Flaky {
        let target = target_url.trim_start_matches("ldaps://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ldaps://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if count.fetch_add(1, Ordering::SeqCst) < drops {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Flaky {
            url,
            accepted,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Flaky {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn the_directory_makes_one_attempt_and_reports_a_dropped_connection_as_transient() {
    let Some(dc) = dc() else { return };
    let ou = TempOu::new(&dc, "once").await;
    let flaky = Flaky::start(&dc.url, 1).await;
    let mut c = config(&dc, "");
    c.url = flaky.url.clone();
    let d = LdapDirectory::builder(c).build().unwrap();
    let s = spec("ldap-once", 1, &unique("K1"), &ou.dn);
    let err = d.create_computer(&s).await.unwrap_err();
    assert!(matches!(err, BackendError::Transient(_)), "{err}");
    assert_eq!(flaky.accepted(), 1, "no hidden retry inside the directory");
    // The next call (the controller's retry) gets through.
    d.create_computer(&s).await.unwrap();
    assert_eq!(flaky.accepted(), 2);
}

#[tokio::test]
async fn the_controller_retries_ldap_calls_through_a_restarting_dc() {
    let Some(dc) = dc() else { return };
    let ou = TempOu::new(&dc, "retry").await;
    let flaky = Flaky::start(&dc.url, 2).await;
    let owner = format!("ldap-retry-{}", uuid::Uuid::new_v4().simple());
    let config = Fixture::memory_pool("p")
        .startup_script("{ad_join_credential}")
        .boot_latency(0)
        .checkin_delay(0)
        .ldap("url", flaky.url.clone())
        .ldap("service_account_dn", dc.bind_dn.clone())
        .ldap("service_account_password", dc.password.clone())
        .ldap("ca_certificate_file", dc.ca.clone())
        .autoscale("ad_computer_container_dn", ou.dn.clone())
        .minimum_standby(1)
        .config();
    let VmProviderConfig::Memory(mem) = config.vm_providers[0].clone() else {
        panic!("a memory provider")
    };
    let cloud = Arc::new(MemoryCloud::new(mem, 7));
    let directory = Arc::new(
        LdapDirectory::builder(config.ldap_configs[0].clone())
            .build()
            .unwrap(),
    );
    let scaler = Autoscaler::builder(config)
        .owner_id(&owner)
        .provider(cloud)
        .directory(directory.clone())
        .retry(RetryPolicy {
            attempts: 5,
            base: Duration::from_millis(50),
            cap: Duration::from_millis(500),
        })
        .build()
        .unwrap();
    let mut events = scaler.subscribe();
    scaler.tick().await;
    scaler.settle().await;
    let mut failures = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::Failed { error, .. } = event {
            failures.push(error);
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
    // Two dropped connections (the first tick's listing and create may each meet one), then
    // the ones that worked.
    assert!(flaky.accepted() >= 3, "{} connections", flaky.accepted());
    let servers = scaler.servers();
    assert_eq!(servers.len(), 1, "{servers:?}");
    let records = directory
        .list_computers(&owner, std::slice::from_ref(&ou.dn))
        .await
        .unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].name.eq_ignore_ascii_case(&servers[0].hostname));
}
