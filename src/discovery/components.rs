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
/// host to component names, through the configured table. `answer` is detection's one
/// query: each of its series carries either a `group` (from `count by (group)`) or a `job`.
pub fn from_answer(
    map: &BTreeMap<String, ComponentMatch>,
    answer: &QueryAnswer,
) -> BTreeSet<String> {
    let values = |label: &str| -> BTreeSet<String> {
        answer
            .series
            .iter()
            .filter_map(|s| s.get(label).cloned())
            .collect()
    };
    let groups = values("group");
    let jobs = values("job");
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
///
/// A process is known by its `comm`, and also by the file names of its executable and
/// of its argv[0]: `comm` keeps 15 characters only (`blackbox_export`), and
/// `/proc/PID/exe` of another user's process cannot be read without privileges, while
/// its command line can.
pub fn from_process_table() -> BTreeSet<String> {
    let what = sysinfo::ProcessRefreshKind::nothing()
        .with_exe(sysinfo::UpdateKind::OnlyIfNotSet)
        .with_cmd(sysinfo::UpdateKind::OnlyIfNotSet);
    let system = match sysinfo::System::new_with_specifics(
        sysinfo::RefreshKind::nothing().with_processes(what),
    ) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot read the process table: {e}");
            return BTreeSet::new();
        }
    };
    let names = system.processes().values().flat_map(|p| {
        names_of(
            &p.name().to_string_lossy(),
            p.exe(),
            p.cmd().first().map(|arg| arg.to_string_lossy()).as_deref(),
        )
    });
    from_process_names(names)
}

/// The names a process may be known by: its `comm`, its executable's file name (without
/// the ` (deleted)` the kernel adds once the file is replaced, as an upgrade does) and
/// its argv[0]'s file name.
fn names_of(comm: &str, exe: Option<&std::path::Path>, argv0: Option<&str>) -> Vec<String> {
    let file_name = |path: &str| -> Option<String> {
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        let name = path.rsplit('/').next()?;
        (!name.is_empty()).then(|| name.to_owned())
    };
    let mut names = vec![comm.to_owned()];
    names.extend(exe.and_then(|e| file_name(&e.to_string_lossy())));
    if let Some(argv0) = argv0 {
        names.extend(file_name(argv0));
        // A process that rewrote its command line into one string ("tikv-server --config …").
        if let Some((first, _)) = argv0.split_once(' ') {
            names.extend(file_name(first));
        }
    }
    names
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

    /// An answer with one series per `(label, value)`.
    fn answer(series: &[(&str, &str)]) -> QueryAnswer {
        QueryAnswer {
            series: series
                .iter()
                .map(|(label, v)| BTreeMap::from([(label.to_string(), v.to_string())]))
                .collect(),
            values: Vec::new(),
        }
    }

    #[test]
    fn groups_and_jobs_map_to_components() {
        let found = from_answer(
            &default_component_map(),
            &answer(&[
                ("group", "tikv"),
                ("group", "blackbox_exporter"),
                ("group", "grafana"),
                ("group", "unknown"),
                ("job", "overwritten-nodes"),
                ("job", "pd"),
            ]),
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
    fn a_group_matches_only_as_a_group_and_a_job_only_as_a_job() {
        // grafana is known by its probe group only, overwritten-nodes by its job only.
        let found = from_answer(
            &default_component_map(),
            &answer(&[("job", "grafana"), ("group", "overwritten-nodes")]),
        );
        assert!(found.is_empty(), "{found:?}");
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
    fn a_process_is_known_by_its_executable_and_argv0_too() {
        let names = names_of(
            "blackbox_export",
            Some(std::path::Path::new(
                "/opt/tidb-deploy/blackbox_exporter-9115/bin/blackbox_exporter (deleted)",
            )),
            Some("bin/blackbox_exporter/blackbox_exporter"),
        );
        assert_eq!(
            names,
            ["blackbox_export", "blackbox_exporter", "blackbox_exporter"]
        );
        let rewritten = names_of("tikv-server", None, Some("bin/tikv-server --config x.toml"));
        assert!(
            rewritten.contains(&"tikv-server".to_string()),
            "{rewritten:?}"
        );
        assert_eq!(names_of("bash", None, Some("")), ["bash"]);
        let found = from_process_names(
            names_of("blackbox_export", None, Some("./blackbox_exporter")).into_iter(),
        );
        assert!(found.contains("blackbox_exporter"), "{found:?}");
    }

    /// A real process whose name is longer than the 15 characters `comm` keeps.
    #[test]
    fn a_running_blackbox_exporter_is_found_in_the_process_table() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("blackbox_exporter");
        std::fs::copy("/bin/sleep", &exe).unwrap();
        let mut child = std::process::Command::new(&exe).arg("30").spawn().unwrap();
        let found = from_process_table();
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains("blackbox_exporter"), "{found:?}");
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
