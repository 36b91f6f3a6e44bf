//! Taking up the VM an earlier create of the same server made: a retry after a lost answer, or
//! a create resumed after a restart or failover. The resumed create renders its startup script
//! again (a new check-in token, a new AD password), but ARM refuses to change a VM's custom
//! data (`409 PropertyChangeNotAllowed`): the VM is kept as the first attempt made it, never
//! PUT again, its creation followed to its end and its OS disk tagged, as a first create does.

use std::time::Duration;

use kasm_scale_core::traits::{BackendError, Vm, VmProvider, VmSpec};
use reqwest::Method;
use serde_json::Value;

use crate::arm::VM_API_VERSION;
use crate::provider::{AzureProvider, Names};

/// The first pause between two reads of a VM being created by an earlier attempt (whose
/// operation URL is lost); doubled after each read.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause between two such reads.
const MAX_PAUSE: Duration = Duration::from_secs(15);

impl AzureProvider {
    /// Takes up `vm`, found under the name of `spec`'s server: refused (and left alone) when
    /// its tags name another server or owner; else its creation is followed to its end (a
    /// failed one is removed, as a failed first create is) and it is returned.
    pub(crate) async fn adopt(
        &self,
        spec: &VmSpec,
        names: &Names,
        vm: Vm,
    ) -> Result<Vm, BackendError> {
        self.check_owner(spec, names, &vm)?;
        tracing::info!(vm = %names.vm, "taking up the VM an earlier create of this server made");
        let path = self.vm_path(&names.vm);
        let mut pause = FIRST_PAUSE;
        loop {
            match self.provisioning_state(&path).await?.as_deref() {
                None => {
                    return Err(BackendError::Transient(format!(
                        "cannot create the VM {}: it vanished while its creation was followed",
                        names.vm
                    )));
                }
                Some(s)
                    if s.eq_ignore_ascii_case("Creating") || s.eq_ignore_ascii_case("Updating") =>
                {
                    tracing::debug!(vm = %names.vm, state = s, "still being created");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
                Some(s)
                    if s.eq_ignore_ascii_case("Failed") || s.eq_ignore_ascii_case("Canceled") =>
                {
                    let state = s.to_owned();
                    let _ = self.remove(names).await;
                    return Err(BackendError::Transient(format!(
                        "cannot create the VM {}: its creation ended {state}",
                        names.vm
                    )));
                }
                Some(s) if s.eq_ignore_ascii_case("Deleting") => {
                    return Err(BackendError::Transient(format!(
                        "cannot create the VM {}: it is being deleted",
                        names.vm
                    )));
                }
                Some(_) => break,
            }
        }
        self.tag_disk(spec, names).await?;
        self.get(&path).await?.ok_or_else(|| {
            BackendError::Transient(format!(
                "cannot create the VM {}: it vanished once made",
                names.vm
            ))
        })
    }

    /// Refuses (`Conflict`) a VM found under the name of `spec`'s server whose tags name another
    /// server or owner: it is left alone.
    pub(crate) fn check_owner(
        &self,
        spec: &VmSpec,
        names: &Names,
        vm: &Vm,
    ) -> Result<(), BackendError> {
        let (want, have) = (&spec.owner, &vm.owner);
        if have.server_id != want.server_id || have.owner_id != want.owner_id {
            return Err(BackendError::Conflict(format!(
                "{}: the VM {} belongs to server {} of owner `{}`, not to server {} of `{}`; left alone",
                self.config.name,
                names.vm,
                have.server_id,
                have.owner_id,
                want.server_id,
                want.owner_id
            )));
        }
        Ok(())
    }

    /// The `provisioningState` of the VM at `path`, `None` when it does not exist.
    pub(crate) async fn provisioning_state(
        &self,
        path: &str,
    ) -> Result<Option<String>, BackendError> {
        match self
            .arm
            .send(
                Method::GET,
                path,
                VM_API_VERSION,
                None,
                "cannot read the VM",
            )
            .await
        {
            Ok(answer) => Ok(Some(
                answer
                    .body
                    .get("properties")
                    .and_then(|p| p.get("provisioningState"))
                    .and_then(Value::as_str)
                    .unwrap_or("Creating")
                    .to_owned(),
            )),
            Err(BackendError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
