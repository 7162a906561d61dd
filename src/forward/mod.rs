//! Alertmanager forwarding (SPEC §9): poll the pair, merge and dedupe, and deliver each
//! `firing` and `resolved` event to every target through an on-disk spool.
//!
//! - [`client`]: one server's `GET /api/v2/alerts`.
//! - [`merge`] and [`transitions`]: the pure logic, from answers to events.
//! - [`spool`]: events on disk until every target took them; the saved alert state.
//! - [`target`]: `exec` and `http` targets; [`template`]: what their templates see.
//! - [`receiver`]: the optional webhook receiver, feeding the same pipeline.
//! - [`cli`]: `tidb-host-agent alerts`.
//!
//! [`Forwarder::build`] checks a configuration; [`Forwarder::run`] is the daemon task, on a
//! thread of its own. Delivery is at least once: a crash between a target's
//! success and its record in the spool sends that event to that target again.

pub mod alert;
pub mod cli;
pub mod client;
mod deliver;
pub mod merge;
pub mod receiver;
pub mod spool;
pub mod target;
pub mod template;
pub mod transitions;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{Mutex, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::AlertmanagerConfig;
use crate::metrics::Metrics;

use alert::Event;
use client::{AlertmanagerClient, ClientError};
use receiver::ReceiverError;
use spool::{Backoff, Spool, SpoolError};
use target::TargetError;
use transitions::{Known, ServerAnswer};

/// `known.json` unchanged in outline is written again after this, to refresh the alerts'
/// details; a change of outline (an alert, a holder, an event) is written at once.
const KNOWN_REFRESH: Duration = Duration::from_secs(60);

/// Dedupe keys live at least this long, however short `max_age` is.
const MIN_RETENTION: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Receiver(#[from] ReceiverError),
}

/// The state the poller, the receiver and the delivery workers share.
#[derive(Debug)]
pub(crate) struct Pipeline {
    spool: Spool,
    known: Known,
    /// How long dedupe keys are kept (at least `max_age`).
    retention: Duration,
    /// The last save of `known` failed; try again on the next change or poll.
    unsaved: bool,
    /// When `known` was last written.
    saved_at: Option<tokio::time::Instant>,
    metrics: Arc<Metrics>,
    /// The spool is dropping its oldest events to make room (logged once per episode).
    spool_full: Bound,
}

/// A bound that is hit: logged once when it starts being hit, and once when it stops.
#[derive(Debug, Default)]
pub(crate) struct Bound {
    hit: bool,
}

impl Bound {
    /// Records whether the bound was hit now; true when that is a change.
    fn hit(&mut self, now: bool) -> bool {
        std::mem::replace(&mut self.hit, now) != now
    }
}

impl Pipeline {
    /// Runs `derive` on a copy of the alert state and spools the events it returns;
    /// only then is the new state adopted and saved. When spooling fails nothing is
    /// adopted, so the same events are derived again on the next poll.
    fn apply(
        &mut self,
        now: Timestamp,
        derive: impl FnOnce(&mut Known) -> Vec<Event>,
    ) -> Result<Vec<Event>, SpoolError> {
        let mut next = self.known.clone();
        let events = derive(&mut next);
        for event in &events {
            if self.spool.add(event.clone(), now)? {
                tracing::info!(
                    alertname = event.alertname(),
                    status = %event.status,
                    fingerprint = ?event.fingerprint,
                    "alert event spooled"
                );
            }
        }
        self.note_dropped();
        // What a restart needs is which alerts are known, who holds them and which events
        // went out; an alert's other fields (`updatedAt` moves on every re-send) are
        // refreshed in the file at most every KNOWN_REFRESH.
        let due = self.unsaved
            || !next.same_outline(&self.known)
            || self.saved_at.is_none_or(|at| at.elapsed() >= KNOWN_REFRESH);
        self.known = next;
        if due {
            self.unsaved = false;
            self.saved_at = Some(tokio::time::Instant::now());
            if let Err(e) = self.spool.save_known(&self.known) {
                self.unsaved = true;
                tracing::error!("{e}; after a restart, alerts may be sent again");
            }
        }
        Ok(events)
    }

    /// Counts the events the spool dropped to make room, and says so once per episode.
    fn note_dropped(&mut self) {
        let dropped = self.spool.take_dropped();
        if !dropped.is_empty() {
            self.metrics
                .forward_dropped("spool_full", dropped.len() as u64);
        }
        if self.spool_full.hit(!dropped.is_empty()) {
            if dropped.is_empty() {
                tracing::info!("the forward spool has room again");
            } else {
                tracing::error!(
                    dropped = dropped.len(),
                    oldest_dropped = %dropped[0].created,
                    spooled_bytes = self.spool.bytes(),
                    "the forward spool is full (alertmanager.max_events or max_bytes): its \
                     oldest events are dropped to make room; tidb_host_agent_forward_dropped_total \
                     counts them"
                );
            }
        }
    }
}

/// Wakes the delivery workers after new events were spooled.
#[derive(Debug, Clone, Default)]
pub(crate) struct Wakers(Arc<Vec<Arc<Notify>>>);

impl Wakers {
    fn wake_all(&self) {
        for waker in self.0.iter() {
            waker.notify_one();
        }
    }
}

/// Forwarding, built from its configuration: the targets' templates and the servers'
/// clients (secret files, CA, headers) are checked before anything runs, so that a
/// reload can refuse a configuration whose forwarding would fail.
pub struct Forwarder {
    config: AlertmanagerConfig,
    spool_dir: PathBuf,
    targets: Vec<target::Target>,
    clients: Vec<AlertmanagerClient>,
    /// Who may post to the webhook receiver, when `listen` is set.
    access: receiver::Access,
}

impl Forwarder {
    /// `None` when forwarding is off (no servers and no `listen`). `state_dir` holds the
    /// spool unless `spool_dir` is set.
    pub fn build(
        config: &AlertmanagerConfig,
        state_dir: &std::path::Path,
    ) -> Result<Option<Self>, Vec<ForwardError>> {
        if config.servers.is_empty() && config.listen.is_none() {
            return Ok(None);
        }
        let mut problems = Vec::new();
        let targets = target::build(&config.forwards)
            .map_err(|e| problems.push(ForwardError::from(e)))
            .unwrap_or_default();
        let mut clients = Vec::new();
        for server in &config.servers {
            match AlertmanagerClient::new(server, config) {
                Ok(client) => clients.push(client),
                Err(e) => problems.push(e.into()),
            }
        }
        let token = match config
            .listen_token_file
            .as_deref()
            .map(receiver::BearerToken::read)
        {
            Some(Ok(token)) => Some(token),
            Some(Err(e)) => {
                problems.push(e.into());
                None
            }
            None => None,
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Some(Self {
            access: receiver::Access {
                token,
                max_clients: config.listen_max_clients,
                max_alerts: config.max_alerts,
            },
            spool_dir: config
                .spool_dir
                .clone()
                .unwrap_or_else(|| state_dir.join("spool")),
            config: config.clone(),
            targets,
            clients,
        }))
    }

    /// The daemon task: polls every `poll_interval`, serves the receiver when `listen` is
    /// set, and delivers until `shutdown`; returns once every sub-task has stopped. Each
    /// attempt is counted in `metrics`.
    pub async fn run(
        self,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Result<(), ForwardError> {
        let Self {
            config,
            spool_dir,
            targets,
            clients,
            access,
        } = self;
        let mut spool = Spool::open(&spool_dir)?;
        spool.set_limits(spool::Limits {
            max_events: config.max_events,
            max_bytes: config.max_bytes,
        });
        let known = spool.load_known();
        tracing::info!(
            spool = %spool_dir.display(),
            pending = spool.len(),
            known_alerts = known.alerts.len(),
            targets = targets.len(),
            "alert forwarding started"
        );
        let retention = config.max_age.get().max(MIN_RETENTION);
        let pipeline = Arc::new(Mutex::new(Pipeline {
            spool,
            known,
            retention,
            unsaved: false,
            saved_at: None,
            metrics: Arc::clone(&metrics),
            spool_full: Bound::default(),
        }));
        let target_names: Arc<[String]> = targets.iter().map(|t| t.name().to_owned()).collect();
        let notifies: Vec<Arc<Notify>> = targets.iter().map(|_| Arc::new(Notify::new())).collect();
        let wakers = Wakers(Arc::new(notifies.clone()));
        let backoff = Backoff {
            initial: config.retry_initial.get(),
            max: config.retry_max.get(),
        };

        let tracker = TaskTracker::new();
        if let Some(listen) = &config.listen {
            tracker.spawn(receive(
                listen.clone(),
                Arc::clone(&pipeline),
                wakers.clone(),
                access,
                Arc::clone(&metrics),
                shutdown.clone(),
            ));
        }
        for (target, wake) in targets.into_iter().zip(notifies) {
            tracker.spawn(deliver::run_target(
                target,
                Arc::clone(&pipeline),
                wake,
                Arc::clone(&target_names),
                backoff,
                Arc::clone(&metrics),
                shutdown.clone(),
            ));
        }
        tracker.close();
        poll_loop(
            &config,
            &clients,
            &pipeline,
            &wakers,
            &target_names,
            &metrics,
            &shutdown,
        )
        .await;
        tracker.wait().await;
        tracing::info!("alert forwarding stopped");
        Ok(())
    }
}

/// The webhook receiver, bound again and again until it can be: an address taken (by the
/// previous process, say) costs only the receiver, never polling or delivery.
async fn receive(
    listen: String,
    pipeline: Arc<Mutex<Pipeline>>,
    wakers: Wakers,
    access: receiver::Access,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    const RETRY_MAX: Duration = Duration::from_secs(30);
    let mut retry = Duration::from_secs(1);
    let mut failing = Bound::default();
    loop {
        match receiver::bind(&listen).await {
            Ok(listener) => {
                metrics.forward_part_up("receiver", true);
                if failing.hit(false) {
                    tracing::info!(%listen, "the webhook receiver listens again");
                }
                receiver::serve(listener, pipeline, wakers, access, metrics, shutdown).await;
                return;
            }
            Err(e) => {
                metrics.forward_part_up("receiver", false);
                if failing.hit(true) {
                    tracing::error!(
                        "{}; the webhook receiver is off until it can listen (polling and \
                         delivery go on); retrying",
                        crate::error::chain(&e)
                    );
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(RETRY_MAX);
    }
}

async fn poll_loop(
    config: &AlertmanagerConfig,
    clients: &[AlertmanagerClient],
    pipeline: &Mutex<Pipeline>,
    wakers: &Wakers,
    target_names: &[String],
    metrics: &Metrics,
    shutdown: &CancellationToken,
) {
    let mut ticker = tokio::time::interval(config.poll_interval.get());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reachable: BTreeMap<String, bool> = BTreeMap::new();
    let mut over_max = Bound::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if !clients.is_empty() {
            let answers = tokio::select! {
                _ = shutdown.cancelled() => return,
                answers = futures::future::join_all(clients.iter().map(|c| c.alerts())) => answers,
            };
            let answers: Vec<Option<client::Answer>> = clients
                .iter()
                .zip(answers)
                .map(|(client, answer)| note_reachability(metrics, &mut reachable, client, answer))
                .collect();
            let ignored: usize = answers.iter().flatten().map(|a| a.ignored).sum();
            if ignored > 0 {
                metrics.forward_dropped("alerts_over_max", ignored as u64);
            }
            if over_max.hit(ignored > 0) {
                if ignored > 0 {
                    tracing::error!(
                        ignored,
                        max_alerts = config.max_alerts,
                        "an Alertmanager answered more alerts than alertmanager.max_alerts: the \
                         earliest started are forwarded, the rest once there is room"
                    );
                } else {
                    tracing::info!("Alertmanager answers fit in alertmanager.max_alerts again");
                }
            }
            let views: Vec<ServerAnswer<'_>> = clients
                .iter()
                .zip(&answers)
                .map(|(client, answer)| ServerAnswer {
                    server: client.name(),
                    alerts: answer.as_ref().map(|a| a.alerts.as_slice()),
                })
                .collect();
            if views.iter().all(|v| v.alerts.is_none()) {
                tracing::debug!("no Alertmanager answered; nothing inferred");
            }
            let now = Timestamp::now();
            let mut pipeline = pipeline.lock().await;
            let retention = pipeline.retention;
            let result = pipeline.apply(now, |known| known.step(&views, now, retention));
            drop(pipeline);
            match result {
                Ok(events) if !events.is_empty() => wakers.wake_all(),
                Ok(_) => {}
                Err(e) => tracing::error!(
                    "{e}; new alert events are not spooled and will be derived again on the next poll"
                ),
            }
        }
        sweep(pipeline, config.max_age.get(), target_names).await;
    }
}

/// Logs a server going down or coming back once, not on every poll.
fn note_reachability(
    metrics: &Metrics,
    reachable: &mut BTreeMap<String, bool>,
    client: &AlertmanagerClient,
    answer: Result<client::Answer, ClientError>,
) -> Option<client::Answer> {
    let was = reachable.insert(client.name().to_owned(), answer.is_ok());
    metrics.forward_part_up(&format!("alertmanager:{}", client.name()), answer.is_ok());
    match answer {
        Ok(alerts) => {
            if was == Some(false) {
                tracing::info!(server = client.name(), "Alertmanager answers again");
            }
            Some(alerts)
        }
        Err(e) => {
            if was != Some(false) {
                tracing::warn!("{e}; its alerts are held as last seen until it answers again");
            }
            None
        }
    }
}

async fn sweep(pipeline: &Mutex<Pipeline>, max_age: Duration, target_names: &[String]) {
    let now = Timestamp::now();
    let expired = pipeline
        .lock()
        .await
        .spool
        .sweep(now, max_age, target_names);
    match expired {
        Ok(expired) => {
            for dropped in expired {
                tracing::error!(
                    alertname = dropped.event.alertname(),
                    status = %dropped.event.status,
                    fingerprint = ?dropped.event.fingerprint,
                    spooled_at = %dropped.created,
                    undelivered = ?dropped.undelivered,
                    last_error = dropped.last_error.as_deref().unwrap_or(""),
                    "alert event dropped: not delivered within alertmanager.max_age ({})",
                    crate::config::Duration(max_age),
                );
            }
        }
        Err(e) => tracing::error!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_is_reported_when_it_starts_and_stops_being_hit() {
        let mut bound = Bound::default();
        assert!(!bound.hit(false));
        assert!(bound.hit(true));
        assert!(!bound.hit(true));
        assert!(bound.hit(false));
    }
}
