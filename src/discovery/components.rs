//! Component detection (SPEC §3): from Prometheus, sticky for a TTL, kept across
//! restarts, with the process table as the last resort.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::ComponentMatch;
use crate::prometheus::QueryAnswer;

/// When each component was last seen on this host. A component stays present for
/// `ttl` after that, so a crashed TiKV keeps reporting `TiKV_server_is_down` instead of
/// vanishing from the output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StickyComponents {
    pub last_seen: BTreeMap<String, Timestamp>,
}

impl StickyComponents {
    pub fn saw(&mut self, components: impl IntoIterator<Item = String>, now: Timestamp) {
        for c in components {
            self.last_seen.insert(c, now);
        }
    }

    /// The components present at `now`; older ones are forgotten.
    pub fn present(&mut self, now: Timestamp, ttl: Duration) -> BTreeSet<String> {
        self.last_seen.retain(|_, seen| {
            Duration::try_from(now.duration_since(*seen)).unwrap_or(Duration::ZERO) <= ttl
        });
        self.last_seen.keys().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.last_seen.is_empty()
    }

    /// Moves sightings later than `now` (a clock stepped back) to `now`; returns how many.
    pub fn clamp_to(&mut self, now: Timestamp) -> usize {
        let mut moved = 0;
        for seen in self.last_seen.values_mut() {
            if *seen > now {
                *seen = now;
                moved += 1;
            }
        }
        moved
    }
}

/// Maps the `group` values of `probe_success` and the `job` values of `up` seen for this
/// host to component names, through the configured table.
pub fn from_answers(
    map: &BTreeMap<String, ComponentMatch>,
    groups: &QueryAnswer,
    jobs: &QueryAnswer,
) -> BTreeSet<String> {
    let values = |answer: &QueryAnswer, label: &str| -> BTreeSet<String> {
        answer
            .series
            .iter()
            .filter_map(|s| s.get(label).cloned())
            .collect()
    };
    let groups = values(groups, "group");
    let jobs = values(jobs, "job");
    map.iter()
        .filter(|(_, m)| {
            m.groups.iter().any(|g| groups.contains(g)) || m.jobs.iter().any(|j| jobs.contains(j))
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// The process names that reveal each component when Prometheus cannot be asked.
const PROCESSES: &[(&str, &str)] = &[
    ("pd-server", "pd"),
    ("tidb-server", "tidb"),
    ("tikv-server", "tikv"),
    ("tiflash", "tiflash"),
    ("node_exporter", "node_exporter"),
    ("blackbox_exporter", "blackbox_exporter"),
    ("grafana-server", "grafana"),
];

/// Components whose server process runs here (the fallback of SPEC §3).
pub fn from_process_table() -> BTreeSet<String> {
    let system = match sysinfo::System::new_with_specifics(
        sysinfo::RefreshKind::nothing().with_processes(sysinfo::ProcessRefreshKind::nothing()),
    ) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot read the process table: {e}");
            return BTreeSet::new();
        }
    };
    let names = system
        .processes()
        .values()
        .map(|p| p.name().to_string_lossy().into_owned());
    from_process_names(names)
}

fn from_process_names(names: impl Iterator<Item = String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for name in names {
        for (process, component) in PROCESSES {
            if name == *process {
                found.insert(component.to_string());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_component_map;

    fn answer(label: &str, values: &[&str]) -> QueryAnswer {
        QueryAnswer {
            series: values
                .iter()
                .map(|v| BTreeMap::from([(label.to_string(), v.to_string())]))
                .collect(),
        }
    }

    #[test]
    fn groups_and_jobs_map_to_components() {
        let found = from_answers(
            &default_component_map(),
            &answer(
                "group",
                &["tikv", "blackbox_exporter", "grafana", "unknown"],
            ),
            &answer("job", &["overwritten-nodes", "pd"]),
        );
        let expected: BTreeSet<String> = [
            "blackbox_exporter",
            "grafana",
            "node_exporter",
            "pd",
            "tikv",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn sticky_for_the_ttl() {
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let ttl = Duration::from_secs(3600);
        let mut sticky = StickyComponents::default();
        sticky.saw(["tikv".to_string()], t0);
        let later = t0 + jiff::SignedDuration::from_secs(3599);
        assert!(sticky.present(later, ttl).contains("tikv"));
        let expired = t0 + jiff::SignedDuration::from_secs(3601);
        assert!(sticky.present(expired, ttl).is_empty());
        assert!(sticky.is_empty());
    }

    #[test]
    fn process_names() {
        let found = from_process_names(
            ["tikv-server", "bash", "pd-server", "tikv-server-x"]
                .iter()
                .map(|s| s.to_string()),
        );
        assert_eq!(found.into_iter().collect::<Vec<_>>(), vec!["pd", "tikv"]);
    }
}
