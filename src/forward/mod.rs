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
//! [`run`] is the daemon task. Delivery is at least once: a crash between a target's
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
        if next != self.known || self.unsaved {
            self.known = next;
            self.unsaved = false;
            if let Err(e) = self.spool.save_known(&self.known) {
                self.unsaved = true;
                tracing::error!("{e}; after a restart, alerts may be sent again");
            }
        }
        Ok(events)
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

/// The daemon task: polls every `poll_interval`, serves the receiver when `listen` is
/// set, and delivers until `shutdown`; returns once every sub-task has stopped. Returns
/// at once when forwarding is off (no servers and no `listen`). `state_dir` holds the
/// spool unless `spool_dir` is set. Each attempt is counted in `metrics`.
pub async fn run(
    config: AlertmanagerConfig,
    state_dir: PathBuf,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), ForwardError> {
    if config.servers.is_empty() && config.listen.is_none() {
        return Ok(());
    }
    let spool_dir = config
        .spool_dir
        .clone()
        .unwrap_or_else(|| state_dir.join("spool"));
    let targets = target::build(&config.forwards)?;
    let clients = config
        .servers
        .iter()
        .map(|server| AlertmanagerClient::new(server, &config))
        .collect::<Result<Vec<_>, _>>()?;
    let spool = Spool::open(&spool_dir)?;
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
        let access = receiver::Access {
            token: config
                .listen_token_file
                .as_deref()
                .map(receiver::BearerToken::read)
                .transpose()?,
            max_clients: config.listen_max_clients,
        };
        let listener = receiver::bind(listen).await?;
        tracker.spawn(receiver::serve(
            listener,
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
        &shutdown,
    )
    .await;
    tracker.wait().await;
    tracing::info!("alert forwarding stopped");
    Ok(())
}

async fn poll_loop(
    config: &AlertmanagerConfig,
    clients: &[AlertmanagerClient],
    pipeline: &Mutex<Pipeline>,
    wakers: &Wakers,
    target_names: &[String],
    shutdown: &CancellationToken,
) {
    let mut ticker = tokio::time::interval(config.poll_interval.get());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reachable: BTreeMap<String, bool> = BTreeMap::new();
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
            let answers: Vec<Option<Vec<alert::Alert>>> = clients
                .iter()
                .zip(answers)
                .map(|(client, answer)| note_reachability(&mut reachable, client, answer))
                .collect();
            let views: Vec<ServerAnswer<'_>> = clients
                .iter()
                .zip(&answers)
                .map(|(client, alerts)| ServerAnswer {
                    server: client.name(),
                    alerts: alerts.as_deref(),
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
    reachable: &mut BTreeMap<String, bool>,
    client: &AlertmanagerClient,
    answer: Result<Vec<alert::Alert>, ClientError>,
) -> Option<Vec<alert::Alert>> {
    let was = reachable.insert(client.name().to_owned(), answer.is_ok());
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
