//! The time limit of one [`StateStore`](crate::traits::StateStore) call.

use crate::traits::StoreError;

/// How long one load or save may take before it fails as [`StoreError::Unavailable`] (ours): a
/// hung database must not hang the controller.
pub const STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs one store call within [`STORE_TIMEOUT`].
pub(crate) async fn bounded<T>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(STORE_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "{what}: no answer within {} s",
                STORE_TIMEOUT.as_secs()
            )))
        })
}
