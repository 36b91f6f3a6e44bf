//! The decorator, once, against the memory backends: concurrency limit, rate limit, timeout,
//! retry of transient errors only, and span fields without secrets. [`Probe`] only adds latency
//! and counts calls in front of a memory backend; what answers is the memory backend.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::*;
use crate::config::MemoryVmConfig;
use crate::controller::RetryPolicy;
use crate::controller::tasks::Randomness;
use crate::engine::ServerId;
use crate::memory::{MemoryCloud, MemoryDirectory, MemoryStore};
use crate::traits::Owner;

/// Latency and a call count in front of a backend.
#[derive(Debug)]
struct Probe<B: ?Sized> {
    delay: Duration,
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    inner: Arc<B>,
}

impl<B: ?Sized> Probe<B> {
    fn new(inner: Arc<B>, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            delay,
            calls: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            inner,
        })
    }

    async fn around<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let answer = call.await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        answer
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl VmProvider for Probe<MemoryCloud> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn create(&self, spec: &VmSpec) -> Result<Vm, BackendError> {
        self.around(self.inner.create(spec)).await
    }
    async fn destroy(&self, vm_id: &str) -> Result<(), BackendError> {
        self.around(self.inner.destroy(vm_id)).await
    }
    async fn get(&self, vm_id: &str) -> Result<Option<Vm>, BackendError> {
        self.around(self.inner.get(vm_id)).await
    }
    async fn list(&self, owner_id: &str) -> Result<Vec<Vm>, BackendError> {
        self.around(self.inner.list(owner_id)).await
    }
}

#[async_trait]
impl DirectoryService for Probe<MemoryDirectory> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn domain(&self) -> &str {
        self.inner.domain()
    }
    async fn create_computer(&self, spec: &ComputerSpec) -> Result<Secret, BackendError> {
        self.around(self.inner.create_computer(spec)).await
    }
    async fn delete_computer(&self, c: &str, n: &str, r: bool) -> Result<(), BackendError> {
        self.around(self.inner.delete_computer(c, n, r)).await
    }
    async fn list_computers(
        &self,
        owner_id: &str,
        containers: &[String],
    ) -> Result<Vec<ComputerRecord>, BackendError> {
        self.around(self.inner.list_computers(owner_id, containers))
            .await
    }
}

#[async_trait]
impl StateStore for Probe<MemoryStore> {
    async fn load(&self) -> Result<Option<Records>, StoreError> {
        self.around(self.inner.load()).await
    }
    async fn save(&self, records: &Records) -> Result<(), StoreError> {
        self.around(self.inner.save(records)).await
    }
    fn durable(&self) -> bool {
        self.inner.durable()
    }
}

fn cloud(extra: &str) -> Arc<MemoryCloud> {
    let config: MemoryVmConfig =
        toml::from_str(&format!("name = \"mem\"\nmax_instances = 100\n{extra}")).unwrap();
    Arc::new(MemoryCloud::new(config, 7))
}

fn guard(name: &str, concurrency: usize, rate: Option<f64>, timeout: u64, attempts: u32) -> Guard {
    let retry = RetryPolicy {
        attempts,
        base: Duration::from_secs(1),
        cap: Duration::from_secs(60),
    };
    let rng = Arc::new(Randomness::new(Some(1)));
    Guard::new(
        name,
        concurrency,
        rate,
        Duration::from_secs(timeout),
        retry,
        rng,
    )
}

fn owner(n: u128) -> Owner {
    Owner {
        owner_id: "o".into(),
        pool: "p".into(),
        config: "c".into(),
        server_id: ServerId(uuid::Uuid::from_u128(n)),
    }
}

fn spec(n: u128, script: &str) -> VmSpec {
    VmSpec {
        owner: owner(n),
        hostname: format!("KASM-{n:010}"),
        startup_script: Secret::new(script.to_owned()),
        offering: 0,
    }
}

#[tokio::test(start_paused = true)]
async fn calls_in_flight_stay_within_the_concurrency_limit() {
    let probe = Probe::new(cloud(""), Duration::from_secs(1));
    let inner: Arc<dyn VmProvider> = probe.clone();
    let guarded = Arc::new(Guarded::new(inner, guard("mem", 2, None, 30, 1)));
    let began = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let guarded = guarded.clone();
        calls.spawn(async move { guarded.list("o").await });
    }
    while let Some(answer) = calls.join_next().await {
        answer.unwrap().unwrap();
    }
    assert_eq!(probe.most_in_flight.load(Ordering::SeqCst), 2);
    assert_eq!(probe.calls(), 6);
    assert_eq!(began.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn calls_are_paced_at_the_rate_limit() {
    let directory = Arc::new(MemoryDirectory::new("ad", "example.local", 3));
    let probe = Probe::new(directory, Duration::ZERO);
    let inner: Arc<dyn DirectoryService> = probe.clone();
    let guarded = Guarded::new(inner, guard("ad", 8, Some(2.0), 30, 1));
    let began = Instant::now();
    let containers = vec!["OU=Computers,DC=example,DC=local".to_owned()];
    for _ in 0..5 {
        guarded.list_computers("o", &containers).await.unwrap();
    }
    // One at once, then one every half second.
    assert_eq!(began.elapsed(), Duration::from_secs(2));
    assert_eq!(probe.calls(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_call_past_its_timeout_fails_as_unavailable_or_transient() {
    let store = Probe::new(Arc::new(MemoryStore::default()), Duration::from_secs(60));
    let inner: Arc<dyn StateStore> = store.clone();
    let guarded = Guarded::new(inner, guard("state_store", 1, None, 30, 1));
    let began = Instant::now();
    let error = guarded.load().await.unwrap_err();
    assert_eq!(began.elapsed(), Duration::from_secs(30));
    assert_eq!(
        error,
        StoreError::Unavailable("load: no answer within 30 s".into())
    );
    // What it wraps says whether it is durable.
    assert!(!guarded.durable());

    let probe = Probe::new(cloud(""), Duration::from_secs(60));
    let inner: Arc<dyn VmProvider> = probe.clone();
    let guarded = Guarded::new(inner, guard("mem", 1, None, 10, 1));
    let error = guarded.get("vm-1").await.unwrap_err();
    assert_eq!(
        error,
        BackendError::Transient("no answer within 10 s".into())
    );
}

#[tokio::test(start_paused = true)]
async fn transient_errors_are_retried_with_backoff_and_permanent_ones_are_not() {
    // A cloud that answers "rate limited" past one call a second: the second call waits the
    // asked time and goes through on its retry.
    let probe = Probe::new(cloud("rate_limit_per_second = 1.0"), Duration::ZERO);
    let inner: Arc<dyn VmProvider> = probe.clone();
    let guarded = Guarded::new(inner, guard("mem", 8, None, 30, 3));
    let began = Instant::now();
    guarded.list("o").await.unwrap();
    guarded.list("o").await.unwrap();
    assert_eq!(probe.calls(), 3);
    assert_eq!(began.elapsed(), Duration::from_secs(1));

    // Every create fails as transient: tried as often as the policy says, with waits between.
    let probe = Probe::new(cloud("create_failure_rate = 1.0"), Duration::ZERO);
    let inner: Arc<dyn VmProvider> = probe.clone();
    let guarded = Guarded::new(inner, guard("mem", 8, None, 30, 3));
    let began = Instant::now();
    let error = guarded.create(&spec(1, "")).await.unwrap_err();
    assert!(error.is_retryable(), "{error}");
    assert_eq!(probe.calls(), 3);
    // 1 s then 2 s, each with ±50% jitter.
    assert!(
        began.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        began.elapsed()
    );
    assert!(
        began.elapsed() <= Duration::from_millis(4500),
        "{:?}",
        began.elapsed()
    );

    // A name the directory refuses is a permanent error: one attempt, no wait.
    let directory = Arc::new(MemoryDirectory::new("ad", "example.local", 3));
    let probe = Probe::new(directory, Duration::ZERO);
    let inner: Arc<dyn DirectoryService> = probe.clone();
    let guarded = Guarded::new(inner, guard("ad", 8, None, 30, 5));
    let bad = ComputerSpec {
        name: "not a name!".into(),
        container_dn: "OU=Computers,DC=example,DC=local".into(),
        owner: owner(2),
    };
    let began = Instant::now();
    let error = guarded.create_computer(&bad).await.unwrap_err();
    assert!(matches!(error, BackendError::InvalidRequest(_)), "{error}");
    assert_eq!(probe.calls(), 1);
    assert_eq!(began.elapsed(), Duration::ZERO);

    // A store that does not answer is unavailable, which a store policy with retries retries.
    let store = Probe::new(Arc::new(MemoryStore::default()), Duration::from_secs(60));
    let inner: Arc<dyn StateStore> = store.clone();
    let guarded = Guarded::new(inner, guard("state_store", 1, None, 30, 2));
    let error = guarded.save(&Records::default()).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error}");
    assert_eq!(store.calls(), 2);
}

/// Spans and events seen by a subscriber, as text.
#[derive(Default, Clone)]
struct Seen(Arc<Mutex<Vec<String>>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={:?}", field.name(), value));
    }
}

impl tracing::Subscriber for Seen {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut text = span.metadata().name().to_owned();
        span.record(&mut Fields(&mut text));
        let mut seen = self.0.lock().unwrap();
        seen.push(text);
        tracing::span::Id::from_u64(seen.len() as u64)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut text = String::from("record");
        values.record(&mut Fields(&mut text));
        self.0.lock().unwrap().push(text);
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = String::from("event");
        event.record(&mut Fields(&mut text));
        self.0.lock().unwrap().push(text);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(start_paused = true)]
async fn every_call_has_a_span_naming_it_without_secrets() {
    let seen = Seen::default();
    let _default = tracing::subscriber::set_default(seen.clone());
    let inner: Arc<dyn VmProvider> = cloud("");
    let provider = Guarded::new(inner, guard("mem", 8, None, 30, 1));
    let vm = provider
        .create(&spec(3, "echo s3cret-script-text"))
        .await
        .unwrap();
    provider.destroy(&vm.vm_id).await.unwrap();
    let inner: Arc<dyn DirectoryService> = Arc::new(MemoryDirectory::new("ad", "example.local", 3));
    let directory = Guarded::new(inner, guard("ad", 8, None, 30, 1));
    let computer = ComputerSpec {
        name: "KASM-0000000003".into(),
        container_dn: "OU=Computers,DC=example,DC=local".into(),
        owner: owner(3),
    };
    let password = directory.create_computer(&computer).await.unwrap();
    let inner: Arc<dyn StateStore> = Arc::new(MemoryStore::default());
    let store = Guarded::new(inner, guard("state_store", 1, None, 30, 1));
    store.save(&Records::default()).await.unwrap();

    let seen = seen.0.lock().unwrap().clone();
    let server = ServerId(uuid::Uuid::from_u128(3)).to_string();
    let has = |name: &str, parts: &[&str]| {
        seen.iter()
            .any(|s| s.starts_with(name) && parts.iter().all(|p| s.contains(p)))
    };
    assert!(
        has(
            "vm_provider",
            &["backend=mem", "call=\"create\"", &server, "KASM-0000000003"]
        ),
        "{seen:#?}"
    );
    assert!(
        has(
            "vm_provider",
            &["call=\"destroy\"", &format!("vm=\"{}\"", vm.vm_id)]
        ),
        "{seen:#?}"
    );
    assert!(
        has(
            "directory",
            &[
                "backend=ad",
                "call=\"create_computer\"",
                &server,
                "OU=Computers"
            ]
        ),
        "{seen:#?}"
    );
    assert!(
        has("state_store", &["call=\"save\"", "servers=0"]),
        "{seen:#?}"
    );
    let all = seen.join("\n");
    assert!(!all.contains("s3cret-script-text"), "{all}");
    assert!(!all.contains(password.expose()), "{all}");
}
