//! The pair's own alerts (SPEC §15 "Sources"): one instant query on `ALERTS` covers every
//! key read from them, and its answer says, per rule, whether Prometheus has the alert
//! firing, pending, or not at all on this host.

use super::evidence;
use super::server::{Labels, QueryAnswer};
use crate::config::QueryMode;
use crate::promql::HostScope;
use crate::snapshot::Reason;

/// A rule's alert as one server has it. Ordered, so that `any` is the most and `all` the
/// least of the servers' states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AlertsState {
    Inactive,
    Pending,
    Firing,
}

/// One rule read from `ALERTS`: its alertname, and whether only this host's alerts count
/// (host rules) or any (cluster rules).
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    pub alert: &'a str,
    pub on_this_host: bool,
}

/// `ALERTS{alertname=~"A|B",HOST} or ALERTS{alertname=~"C"}`: host rules' alerts with the
/// host matcher, cluster rules' alerts on any instance. Only the parts that have rules.
/// With a matcher of exact values, the host part is `ALERTS{HOST}`.
pub fn query(wanted: &[Wanted<'_>], host: &HostScope) -> String {
    let names = |on_this_host: bool| {
        let mut names: Vec<String> = wanted
            .iter()
            .filter(|w| w.on_this_host == on_this_host)
            .map(|w| regex::escape(w.alert))
            .collect();
        names.sort();
        names.dedup();
        names.join("|").replace('\\', "\\\\").replace('"', "\\\"")
    };
    let mut parts = Vec::new();
    let host_names = names(true);
    if !host_names.is_empty() {
        parts.push(match host.instances() {
            // Every alert on the host's exact values: few, and [`states`] picks the names,
            // which spares Prometheus compiling a regex of them at every query.
            Some(_) => format!("ALERTS{{{host}}}"),
            None => format!("ALERTS{{alertname=~\"{host_names}\",{host}}}"),
        });
    }
    let cluster_names = names(false);
    if !cluster_names.is_empty() {
        parts.push(format!("ALERTS{{alertname=~\"{cluster_names}\"}}"));
    }
    parts.join(" or ")
}

/// Each wanted rule's state in one server's `answer`. A host rule's alert counts only when
/// its host label matches this host (the `or` may bring another host's alert of a name
/// that is a cluster rule too).
pub fn states(answer: &QueryAnswer, wanted: &[Wanted<'_>], host: &HostScope) -> Vec<AlertsState> {
    wanted
        .iter()
        .map(|w| {
            matching(answer, w, host)
                .map(|(_, _, state)| state)
                .max()
                .unwrap_or(AlertsState::Inactive)
        })
        .collect()
}

/// The series behind `wanted`'s `state` in one server's `answer`, as a key's `reasons`:
/// the alert's own labels (instance, level, …), its state and value.
pub fn reasons(
    answer: &QueryAnswer,
    wanted: &Wanted<'_>,
    host: &HostScope,
    state: AlertsState,
) -> Vec<Reason> {
    evidence::reasons(
        matching(answer, wanted, host)
            .filter(|(_, _, s)| *s == state)
            .map(|(labels, value, _)| (labels, value)),
    )
}

/// `wanted`'s series in `answer`, each with its state.
fn matching<'a>(
    answer: &'a QueryAnswer,
    wanted: &'a Wanted<'_>,
    host: &'a HostScope,
) -> impl Iterator<Item = (&'a Labels, &'a str, AlertsState)> {
    answer
        .samples()
        .filter(|(s, _)| s.get("alertname").map(String::as_str) == Some(wanted.alert))
        .filter(|(s, _)| {
            !wanted.on_this_host
                || s.get(host.label())
                    .is_some_and(|v| host.matcher().is_match(v))
        })
        .map(|(s, value)| {
            let state = match s.get("alertstate").map(String::as_str) {
                Some("firing") => AlertsState::Firing,
                Some("pending") => AlertsState::Pending,
                _ => AlertsState::Inactive,
            };
            (s, value, state)
        })
}

/// One rule's state over the answering servers' `states` under `mode`: `failover` asks
/// one server, whose state it is; `any` takes the most advanced state any server has;
/// `all` the least advanced that every server has. `None` when no server answered.
pub fn combine(mode: QueryMode, states: impl Iterator<Item = AlertsState>) -> Option<AlertsState> {
    match mode {
        QueryMode::All => states.min(),
        QueryMode::Any | QueryMode::Failover => states.max(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostScope {
        match HostScope::new("instance", &["127.0.1.1"]) {
            Ok(h) => h,
            Err(e) => panic!("{e}"),
        }
    }

    fn series(labels: &[(&str, &str)]) -> super::super::server::Labels {
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Two host rules' alerts and a cluster rule's.
    fn wanted() -> [Wanted<'static>; 3] {
        [
            Wanted {
                alert: "TiKV_server_is_down",
                on_this_host: true,
            },
            Wanted {
                alert: "PD_down_peer",
                on_this_host: false,
            },
            Wanted {
                alert: "TiDB_server_is_down",
                on_this_host: true,
            },
        ]
    }

    #[test]
    fn one_query_for_host_and_cluster_alerts() {
        let wanted = wanted();
        let q = query(&wanted, &host());
        assert_eq!(
            q,
            "ALERTS{alertname=~\"TiDB_server_is_down|TiKV_server_is_down\",\
             instance=~\"(?:127\\\\.0\\\\.1\\\\.1)(?::[0-9]+)?\"} or ALERTS{alertname=~\"PD_down_peer\"}"
        );
        assert!(crate::promql::parse(&q).is_ok(), "{q}");
        assert_eq!(
            query(&wanted[1..2], &host()),
            "ALERTS{alertname=~\"PD_down_peer\"}"
        );
    }

    #[test]
    fn with_exact_values_the_host_part_names_no_alert() {
        let wanted = &wanted()[..2];
        let exact = host().with_instances(&["127.0.1.1:20180", "127.0.1.1:9100"]);
        let q = exact.as_ref().map(|h| query(wanted, h));
        assert_eq!(
            q.as_deref(),
            Some(
                "ALERTS{instance=~\"127\\\\.0\\\\.1\\\\.1:20180|127\\\\.0\\\\.1\\\\.1:9100\"} \
                 or ALERTS{alertname=~\"PD_down_peer\"}"
            )
        );
        // The names are picked from the answer: another alert on the host is no key's.
        let answer = QueryAnswer {
            series: vec![
                series(&[
                    ("alertname", "TiKV_server_is_down"),
                    ("alertstate", "pending"),
                    ("instance", "127.0.1.1:20180"),
                ]),
                series(&[
                    ("alertname", "Node_exporter_server_is_down"),
                    ("alertstate", "firing"),
                    ("instance", "127.0.1.1:9100"),
                ]),
            ],
            values: vec!["1".into(), "1".into()],
        };
        let states = exact.map(|h| states(&answer, &wanted[..1], &h));
        assert_eq!(states, Some(vec![AlertsState::Pending]));
    }

    #[test]
    fn states_come_from_this_hosts_series() {
        let wanted = [
            Wanted {
                alert: "A",
                on_this_host: true,
            },
            Wanted {
                alert: "B",
                on_this_host: true,
            },
            Wanted {
                alert: "C",
                on_this_host: false,
            },
            Wanted {
                alert: "D",
                on_this_host: true,
            },
        ];
        let answer = QueryAnswer {
            values: Vec::new(),
            series: vec![
                series(&[
                    ("alertname", "A"),
                    ("alertstate", "pending"),
                    ("instance", "127.0.1.1:20180"),
                ]),
                series(&[
                    ("alertname", "A"),
                    ("alertstate", "firing"),
                    ("instance", "127.0.1.1:20181"),
                ]),
                series(&[
                    ("alertname", "B"),
                    ("alertstate", "pending"),
                    ("instance", "127.0.1.1:9100"),
                ]),
                series(&[("alertname", "C"), ("alertstate", "firing")]),
                // Another host's, whose address starts with this one's.
                series(&[
                    ("alertname", "D"),
                    ("alertstate", "firing"),
                    ("instance", "127.0.1.10:20180"),
                ]),
            ],
        };
        assert_eq!(
            states(&answer, &wanted, &host()),
            [
                AlertsState::Firing,
                AlertsState::Pending,
                AlertsState::Firing,
                AlertsState::Inactive
            ]
        );
    }

    #[test]
    fn reasons_are_the_series_of_the_state_on_this_host() {
        let wanted = Wanted {
            alert: "A",
            on_this_host: true,
        };
        let answer = QueryAnswer {
            series: vec![
                series(&[
                    ("__name__", "ALERTS"),
                    ("alertname", "A"),
                    ("alertstate", "firing"),
                    ("instance", "127.0.1.1:20180"),
                ]),
                series(&[
                    ("alertname", "A"),
                    ("alertstate", "pending"),
                    ("instance", "127.0.1.1:20181"),
                ]),
                series(&[
                    ("alertname", "A"),
                    ("alertstate", "firing"),
                    ("instance", "127.0.1.10:20180"),
                ]),
            ],
            values: vec!["1".into(), "1".into(), "1".into()],
        };
        let firing = reasons(&answer, &wanted, &host(), AlertsState::Firing);
        assert_eq!(
            firing.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [r#"alertname="A" alertstate="firing" instance="127.0.1.1:20180" value=1"#]
        );
        let pending = reasons(&answer, &wanted, &host(), AlertsState::Pending);
        assert_eq!(pending.len(), 1);
        assert_eq!(
            pending[0].labels.get("instance").map(String::as_str),
            Some("127.0.1.1:20181")
        );
        assert!(reasons(&answer, &wanted, &host(), AlertsState::Inactive).is_empty());
    }

    #[test]
    fn any_takes_the_most_and_all_the_least_advanced_state() {
        use AlertsState::{Firing, Inactive, Pending};
        let two = [Firing, Pending];
        assert_eq!(combine(QueryMode::Any, two.into_iter()), Some(Firing));
        assert_eq!(combine(QueryMode::All, two.into_iter()), Some(Pending));
        assert_eq!(
            combine(QueryMode::All, [Firing, Inactive].into_iter()),
            Some(Inactive)
        );
        assert_eq!(
            combine(QueryMode::Failover, [Pending].into_iter()),
            Some(Pending)
        );
        assert_eq!(combine(QueryMode::Any, std::iter::empty()), None);
    }
}
