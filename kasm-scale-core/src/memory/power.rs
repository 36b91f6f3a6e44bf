//! Stop and start of the in-memory cloud's VMs (the optional part of the `VmProvider`
//! contract): a stop makes a VM `Stopping` for [`STOP_LATENCY`], then `Stopped`, holding no
//! capacity of its offering; a start makes it `Pending` for a `start_latency` sample, then
//! `Running`, and its guest checks in again a `checkin_delay` sample later (the built-in
//! scripts check in at every boot), unless it is a guest that never checks in. A stopped VM
//! can be moved to another offering (`resize`): its stopped hours until then are billed at the
//! old offering's price, the rest at the new one's.

use rand::Rng;
use tokio::time::Instant;

use super::cloud::{MemoryCloud, Power, STOP_LATENCY};
use super::sample;
use crate::traits::{BackendError, StopMode};

impl MemoryCloud {
    /// [`VmProvider::stop`](crate::traits::VmProvider::stop): both modes stop the same way (the
    /// in-memory guest keeps nothing in memory).
    pub(super) fn power_off(&self, vm_id: &str, mode: StopMode) -> Result<(), BackendError> {
        let span = tracing::debug_span!("memory_stop", cloud = %self.config.name, vm_id, ?mode);
        let _entered = span.enter();
        let now = Instant::now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let rate = self.config.stop_failure_rate;
        // As its destroy: whether the VM exists is answered before the rate limit.
        let Some(m) = inner.vms.get(vm_id) else {
            return Err(BackendError::NotFound(format!(
                "{}: no VM {vm_id}",
                self.config.name
            )));
        };
        let power = m.power;
        Self::throttle(inner)?;
        if power != Power::On {
            return Ok(());
        }
        if rate > 0.0 && inner.rng.random::<f64>() < rate {
            tracing::debug!("injected stop failure");
            return Err(BackendError::Transient("injected stop failure".into()));
        }
        let Some(m) = inner.vms.get_mut(vm_id) else {
            return Err(BackendError::NotFound(format!(
                "{}: no VM {vm_id}",
                self.config.name
            )));
        };
        let (running, stopped) = m.unbilled(now);
        inner.usage.add(m.offering, running, stopped);
        m.billed_at = now;
        m.power = Power::Off {
            at: now + STOP_LATENCY,
        };
        tracing::debug!("stopping");
        Ok(())
    }

    /// [`VmProvider::start`](crate::traits::VmProvider::start).
    pub(super) fn power_on(&self, vm_id: &str) -> Result<(), BackendError> {
        let span = tracing::debug_span!("memory_start", cloud = %self.config.name, vm_id);
        let _entered = span.enter();
        let now = Instant::now();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(m) = inner.vms.get(vm_id) else {
            return Err(BackendError::NotFound(format!(
                "{}: no VM {vm_id}",
                self.config.name
            )));
        };
        let (power, offering) = (m.power, m.offering);
        Self::throttle(inner)?;
        match power {
            Power::On => return Ok(()),
            Power::Off { at } if now < at => {
                // EC2 answers IncorrectInstanceState until the stop is done.
                return Err(BackendError::Transient(format!(
                    "{}: VM {vm_id} is still stopping",
                    self.config.name
                )));
            }
            Power::Off { .. } => {}
        }
        if let Some(e) = self.short_of(inner, offering, Some(vm_id), now) {
            tracing::debug!(offering, "no capacity for the start");
            return Err(e);
        }
        let rate = self.config.start_failure_rate;
        if rate > 0.0 && inner.rng.random::<f64>() < rate {
            tracing::debug!("injected start failure");
            return Err(BackendError::Transient("injected start failure".into()));
        }
        let running_at = now + sample(&self.config.start_latency, &mut inner.rng);
        let checkin = sample(&self.config.checkin_delay, &mut inner.rng);
        let Some(m) = inner.vms.get_mut(vm_id) else {
            return Err(BackendError::NotFound(format!(
                "{}: no VM {vm_id}",
                self.config.name
            )));
        };
        let (running, stopped) = m.unbilled(now);
        inner.usage.add(m.offering, running, stopped);
        m.billed_at = now;
        m.power = Power::On;
        m.running_at = running_at;
        m.checkin_at = (!m.silent).then(|| running_at + checkin);
        m.checked_in = false;
        tracing::debug!("starting");
        Ok(())
    }

    /// [`VmProvider::resize`](crate::traits::VmProvider::resize): moves a stopped VM to
    /// `offering` (every offering of the in-memory cloud shares one placement).
    pub(super) fn move_stopped(&self, vm_id: &str, offering: u32) -> Result<(), BackendError> {
        let span =
            tracing::debug_span!("memory_resize", cloud = %self.config.name, vm_id, offering);
        let _entered = span.enter();
        let now = Instant::now();
        let offerings = 1 + self.config.alternatives.len() as u32;
        let mut guard = self.lock();
        let inner = &mut *guard;
        let name = &self.config.name;
        let Some(m) = inner.vms.get(vm_id) else {
            return Err(BackendError::NotFound(format!("{name}: no VM {vm_id}")));
        };
        let (power, current) = (m.power, m.offering);
        Self::throttle(inner)?;
        if offering >= offerings {
            return Err(BackendError::InvalidRequest(format!(
                "{name}: offering {offering} does not exist (the config has {offerings}: 0 to {})",
                offerings - 1
            )));
        }
        match power {
            Power::On => {
                return Err(BackendError::InvalidRequest(format!(
                    "{name}: VM {vm_id} runs; only a stopped VM changes its offering"
                )));
            }
            Power::Off { at } if now < at => {
                return Err(BackendError::Transient(format!(
                    "{name}: VM {vm_id} is still stopping"
                )));
            }
            Power::Off { .. } => {}
        }
        if offering == current {
            return Ok(());
        }
        let Some(m) = inner.vms.get_mut(vm_id) else {
            return Err(BackendError::NotFound(format!("{name}: no VM {vm_id}")));
        };
        let (running, stopped) = m.unbilled(now);
        inner.usage.add(m.offering, running, stopped);
        m.billed_at = now;
        m.offering = offering;
        tracing::debug!(from = current, "moved to another offering");
        Ok(())
    }
}
