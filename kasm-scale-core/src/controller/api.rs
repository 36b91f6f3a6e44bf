//! What a broker calls: start, request and end sessions, check servers in, report sessions.
//! Every call first makes sure the saved state is loaded, so nothing a broker does can be
//! overwritten by a late load.

use super::events::{CheckinStatus, ControllerError, SessionOutcome};
use super::records::{Queued, SessionId};
use super::{Autoscaler, Requested, queue, snapshot, state};
use crate::engine::{ServerId, ServerState, SessionRequest, assign};
use crate::token::TokenError;

impl Autoscaler {
    /// The saved state, loaded once before anything else is served.
    async fn loaded(&self) -> Result<(), ControllerError> {
        let shared = &self.shared;
        state::load_once(&shared.state, &shared.setup().tokens, &shared.events).await
    }

    /// Loads the saved state from the store. Every other call does this first (once), so
    /// calling it is optional; it reports a store that cannot be read before anything else
    /// runs.
    pub async fn start(&self) -> Result<(), ControllerError> {
        self.loaded().await
    }

    /// Asks for a session in `pool`: a ready server with room takes it now, or the request waits
    /// (and with aggressive scaling the next tick provisions for it). With a
    /// [`request_id`](SessionRequest::request_id) the request is idempotent (see
    /// [`Autoscaler::request_session_once`]).
    pub async fn request_session(
        &self,
        pool: &str,
        request: &SessionRequest,
    ) -> Result<SessionOutcome, ControllerError> {
        Ok(self.request_session_once(pool, request).await?.outcome)
    }

    /// [`Autoscaler::request_session`], saying whether the request was made now or is a repeat:
    /// a request with a [`request_id`](SessionRequest::request_id) used within
    /// [`REQUEST_ID_TTL`](super::REQUEST_ID_TTL) makes nothing and answers the session the
    /// first one made (where it stands now), once that is saved. The id and its session are
    /// saved together, so a call that timed out either took effect, and its repeat says so
    /// (`replayed`), or did not, and its repeat makes the session.
    pub async fn request_session_once(
        &self,
        pool: &str,
        request: &SessionRequest,
    ) -> Result<Requested, ControllerError> {
        self.shared.clock.acting()?;
        self.loaded().await?;
        if self.shared.setup().config.pool(pool).is_none() {
            return Err(ControllerError::UnknownPool(pool.into()));
        }
        if let Some(id) = &request.request_id {
            super::requests::check_id(id)?;
        }
        let user = super::affinity::user_of(request.user.as_deref())?;
        let now = self.shared.clock.now();
        let affinity = self
            .shared
            .setup()
            .config
            .pool(pool)
            .is_some_and(|p| p.user_affinity());
        let (outcome, replayed, reconnected) = {
            let mut records = self.shared.state.records();
            let first = match &request.request_id {
                Some(id) => super::requests::replay(&records, id, pool, now)?,
                None => None,
            };
            let own = match (&user, first) {
                (Some(user), None) if affinity && !request.second_session => {
                    super::affinity::session_of(&records, pool, user)
                }
                _ => None,
            };
            match (first, own) {
                (Some(outcome), _) => (outcome, true, false),
                (None, Some(outcome)) => (outcome, false, true),
                (None, None) => {
                    let outcome = self.new_session(&mut records, pool, now);
                    if let Some(user) = &user {
                        records
                            .users
                            .insert(outcome.session(), super::affinity::key(user));
                    }
                    if let Some(id) = &request.request_id {
                        super::requests::remember(&mut records, id, pool, &outcome, now);
                    }
                    (outcome, false, false)
                }
            }
        };
        // The user's name is for the logs: it is not a secret.
        tracing::info!(pool, user = user.as_deref(), replayed, reconnected, outcome = ?outcome, "session requested");
        if reconnected {
            metrics::counter!("kasm_scale_reconnects_total", "pool" => pool.to_owned())
                .increment(1);
        }
        // A repeat waits for the first attempt's save too: it is answered only once saved.
        state::saved(&self.shared).await?;
        Ok(Requested {
            outcome,
            replayed,
            reconnected,
        })
    }

    /// Makes a session in `pool`: seated on a ready server with room, or queued.
    fn new_session(
        &self,
        records: &mut super::RecordsGuard<'_>,
        pool: &str,
        now: jiff::Timestamp,
    ) -> SessionOutcome {
        let session = records.new_session();
        super::demand::arrival(records, &self.shared.setup().config, pool, now);
        let snap = snapshot::snapshot(&self.shared.setup(), records, pool);
        match assign(&snap) {
            Some(server) => {
                queue::seat(records, session, server);
                SessionOutcome::Assigned { session, server }
            }
            None => {
                records
                    .queued
                    .entry(pool.to_owned())
                    .or_default()
                    .push_back(Queued {
                        session,
                        since: now,
                    });
                SessionOutcome::Queued { session }
            }
        }
    }

    /// Ends a session (or withdraws a queued request). The slot it frees goes to a waiting
    /// request of the pool at once.
    pub async fn end_session(&self, session: SessionId) -> Result<(), ControllerError> {
        self.shared.clock.acting()?;
        self.loaded().await?;
        let freed_pool = {
            let mut records = self.shared.state.records();
            records.users.remove(&session);
            if let Some(server) = records.sessions.remove(&session) {
                records.servers.get_mut(&server).map(|s| {
                    s.sessions = s.sessions.saturating_sub(1);
                    s.pool.clone()
                })
            } else {
                let mut found = false;
                for queue in records.queued.values_mut() {
                    if let Some(i) = queue.iter().position(|q| q.session == session) {
                        queue.remove(i);
                        found = true;
                        break;
                    }
                }
                if !found {
                    return Err(ControllerError::UnknownSession(session));
                }
                None
            }
        };
        tracing::info!(session = session.0, "session ended");
        if let Some(pool) = freed_pool {
            self.shared.events.tell(queue::serve(
                &self.shared.setup(),
                &self.shared.state,
                Some(&pool),
            ));
        }
        state::saved(&self.shared).await?;
        Ok(())
    }

    /// Kasm's `set_server_status`: a guest reports its status with the token its startup script
    /// received, and the token names the server. Status `running` makes it ready for sessions
    /// (at once when its VM is known, else as soon as the VM exists); any other status is kept
    /// as its reported status. Repeating a check-in is harmless in every state. Returns the
    /// server.
    pub async fn check_in_token(
        &self,
        token: &str,
        status: &CheckinStatus,
    ) -> Result<ServerId, ControllerError> {
        self.checkin(None, token, status).await
    }

    /// [`Autoscaler::check_in_token`] for a caller that also knows the server id: the token must
    /// name that server.
    pub async fn check_in(
        &self,
        server: ServerId,
        token: &str,
        status: &CheckinStatus,
    ) -> Result<ServerId, ControllerError> {
        self.checkin(Some(server), token, status).await
    }

    /// Saves what changed since the last save. Ticks and broker calls save on their own; what
    /// background work (creates, destroys) changed is saved by the next of them, or by this call
    /// (at shutdown, after [`Autoscaler::settle`]).
    pub async fn save(&self) {
        // A failure is logged, counted and retried by the next save.
        let _ = state::persist(&self.shared).await;
    }

    /// The live server a check-in token names, without checking it in (Kasm's
    /// `get_server_file_mappings?token=` probe, which a guest repeats until its token is
    /// accepted).
    pub async fn token_server(&self, token: &str) -> Result<ServerId, ControllerError> {
        self.loaded().await?;
        let now = self.shared.clock.now();
        let live = |id: ServerId| {
            self.shared
                .state
                .records()
                .servers
                .get(&id)
                .is_some_and(|s| s.state != ServerState::Destroying)
        };
        Ok(self
            .shared
            .setup()
            .tokens
            .verify_for(token, now, None, live)?
            .sub)
    }

    /// A check-in, counted and timed for metrics (`kasm_scale_checkins_total{result}`,
    /// `kasm_scale_checkin_seconds`).
    async fn checkin(
        &self,
        expected: Option<ServerId>,
        token: &str,
        status: &CheckinStatus,
    ) -> Result<ServerId, ControllerError> {
        let began = std::time::Instant::now();
        let outcome = self.checkin_now(expected, token, status).await;
        let result = if outcome.is_ok() {
            "accepted"
        } else {
            "refused"
        };
        metrics::counter!("kasm_scale_checkins_total", "result" => result).increment(1);
        metrics::histogram!("kasm_scale_checkin_seconds").record(began.elapsed().as_secs_f64());
        outcome
    }

    async fn checkin_now(
        &self,
        expected: Option<ServerId>,
        token: &str,
        status: &CheckinStatus,
    ) -> Result<ServerId, ControllerError> {
        self.shared.clock.acting()?;
        self.loaded().await?;
        let now = self.shared.clock.now();
        let live = |id: ServerId| {
            self.shared
                .state
                .records()
                .servers
                .get(&id)
                .is_some_and(|s| s.state != ServerState::Destroying)
        };
        // The token is never logged; its error says why it was refused, without it.
        let claims = self
            .shared
            .setup()
            .tokens
            .verify_for(token, now, expected, live)
            .inspect_err(|e| tracing::warn!(error = %e, "check-in refused"))?;
        let server = claims.sub;
        {
            let span = tracing::info_span!("check_in", %server, status = %status.status);
            let _entered = span.enter();
            let ready_pool = {
                let mut records = self.shared.state.records();
                let Some(current) = records.servers.get(&server) else {
                    return Err(TokenError::WrongServer(server).into());
                };
                // A guest repeating its status (Kasm's scripts post every 30 s) changes nothing,
                // so the records stay clean and nothing is saved.
                let reported = status.describe();
                let new_status = current.reported_status.as_deref() != Some(reported.as_str());
                let first_running = status.is_running()
                    && (current.checked_in_at.is_none() || current.state == ServerState::Starting);
                // Only a change takes the records mutably (which marks them to be saved).
                let changed = new_status || first_running;
                let s = if changed {
                    records.servers.get_mut(&server)
                } else {
                    None
                };
                s.and_then(|s| {
                    s.reported_status = Some(reported);
                    let mut ready = false;
                    if status.is_running() {
                        s.checked_in_at.get_or_insert(now);
                        if s.state == ServerState::Starting {
                            s.state = ServerState::Running;
                            s.power_failures = 0;
                            ready = true;
                        }
                    }
                    ready.then(|| (s.pool.clone(), s.config.clone(), s.created_at, s.woken_at))
                })
            };
            let Some((pool, config, created_at, woken_at)) = ready_pool else {
                // A status report alone (progress, a message) is saved with the next tick's
                // save, coalesced: a guest posting statuses in a loop costs no save each.
                return Ok(server);
            };
            if woken_at.is_some() {
                // Started from the warm tier: its check-in at boot proved it is up.
                super::power::started(&self.shared, server, &config, &pool, woken_at, "checked in");
            } else {
                tracing::info!("server ready");
                self.shared.ready(server, &config, created_at);
                self.shared.events.tell(queue::serve(
                    &self.shared.setup(),
                    &self.shared.state,
                    Some(&pool),
                ));
            }
        }
        state::saved(&self.shared).await?;
        Ok(server)
    }

    /// The broker tells how many sessions a server has and whether it ever had one, for a
    /// server whose sessions the controller does not know (adopted after its saved state was
    /// lost: [`ServerInfo::sessions_unknown`](super::ServerInfo::sessions_unknown)), or to
    /// correct the count. Returns one new session id per session, for `end_session`.
    pub async fn report_sessions(
        &self,
        server: ServerId,
        sessions: u32,
        used: bool,
    ) -> Result<Vec<SessionId>, ControllerError> {
        self.shared.clock.acting()?;
        self.loaded().await?;
        let ids = {
            let mut records = self.shared.state.records();
            let Some(s) = records.servers.get_mut(&server) else {
                return Err(ControllerError::UnknownServer(server));
            };
            s.sessions_unknown = false;
            s.sessions_unknown_since = None;
            s.sessions = 0;
            s.used = used || sessions > 0;
            records.sessions.retain(|_, on| *on != server);
            let ids: Vec<SessionId> = (0..sessions).map(|_| records.new_session()).collect();
            for id in &ids {
                records.sessions.insert(*id, server);
            }
            if let Some(s) = records.servers.get_mut(&server) {
                s.sessions = sessions;
            }
            ids
        };
        tracing::info!(%server, sessions, used, "sessions reported");
        state::saved(&self.shared).await?;
        Ok(ids)
    }
}
