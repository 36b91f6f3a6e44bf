//! The `StateStore` contract (`testkit::state_store_contract`) for the stores of this crate;
//! `kasm-scale-postgres` runs the same suite against PostgreSQL.

use std::sync::Arc;

use kasm_scale_core::controller::FileStore;
use kasm_scale_core::memory::MemoryStore;
use kasm_scale_core::testkit::state_store_contract;
use kasm_scale_core::traits::StateStore;

#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    let store = MemoryStore::default();
    state_store_contract(|| Arc::new(store.clone()) as Arc<dyn StateStore>).await;
}

#[tokio::test]
async fn the_file_store_keeps_the_contract() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state.json");
    // Handles of one store (one writer per file: a second, independent store would be
    // refused at its load by the file's lock); each load reads the file again.
    let store = FileStore::new(&path);
    state_store_contract(|| Arc::new(store.clone()) as Arc<dyn StateStore>).await;
}
