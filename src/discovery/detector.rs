//! Which components this host reports now (SPEC §3): the configured list, or detection
//! from Prometheus every `detect_every`, sticky for `component_ttl`, with the process
//! table as the last resort when Prometheus cannot be asked and nothing is known yet.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;

use super::components::{self, StickyComponents};
use crate::config::HostConfig;
use crate::prometheus::PrometheusPair;
use crate::prometheus::pair::PairError;

pub struct ComponentDetector {
    config: HostConfig,
    /// `count by (group) (probe_success{HOST}) or count by (job) (up{HOST})`: one request.
    query: String,
    query_timeout: Duration,
    sticky: StickyComponents,
    next_detect: Option<Instant>,
    /// The process-table fallback was logged in this outage.
    fallback_logged: bool,
}

impl ComponentDetector {
    pub fn new(config: HostConfig, query: String, query_timeout: Duration) -> Self {
        Self {
            config,
            query,
            query_timeout,
            sticky: StickyComponents::default(),
            next_detect: None,
            fallback_logged: false,
        }
    }

    /// The components seen, as saved in the state file.
    pub fn sticky(&self) -> &StickyComponents {
        &self.sticky
    }

    /// Takes over components seen before: restored from the state file, or handed on by
    /// the configuration a reload replaced.
    pub fn restore(&mut self, sticky: StickyComponents) {
        self.sticky = sticky;
    }

    /// The components this host reports at `now`, detecting them first when due.
    pub async fn present(&mut self, pair: &PrometheusPair, now: Timestamp) -> BTreeSet<String> {
        if !self.config.components.is_empty() {
            return self.config.components.iter().cloned().collect();
        }
        if self.next_detect.is_none_or(|t| Instant::now() >= t) {
            self.detect(pair, now).await;
        }
        self.sticky.present(now, self.config.component_ttl.get())
    }

    async fn detect(&mut self, pair: &PrometheusPair, now: Timestamp) {
        let deadline = Instant::now() + self.query_timeout;
        match pair.query(&self.query, deadline).await {
            Ok(answer) => {
                let found = components::from_answer(&self.config.component_map, &answer);
                tracing::debug!(?found, "components detected from Prometheus");
                self.sticky.saw(found, now);
                self.fallback_logged = false;
                self.next_detect = Some(Instant::now() + self.config.detect_every.get());
            }
            Err(e) => {
                if self.sticky.is_empty() {
                    let found = components::from_process_table();
                    // Said once per outage, not every cycle.
                    if !self.fallback_logged {
                        tracing::warn!(
                            ?found,
                            "cannot detect components from Prometheus ({e}); using the process table"
                        );
                        self.fallback_logged = true;
                    }
                    self.sticky.saw(found, now);
                } else if matches!(e, PairError::BadData(_)) {
                    tracing::error!("component detection query rejected: {e}");
                }
                // Try again next cycle rather than after detect_every.
            }
        }
    }
}
