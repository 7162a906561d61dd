//! The pair's own alerts (SPEC §15 "Sources"): one instant query on `ALERTS` covers every
//! key read from them, and its answer says, per rule, whether Prometheus has the alert
//! firing, pending, or not at all on this host.

use super::server::QueryAnswer;
use crate::promql::HostScope;

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
        parts.push(format!("ALERTS{{alertname=~\"{host_names}\",{host}}}"));
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
            answer
                .series
                .iter()
                .filter(|s| s.get("alertname").map(String::as_str) == Some(w.alert))
                .filter(|s| {
                    !w.on_this_host
                        || s.get(host.label())
                            .is_some_and(|v| host.matcher().is_match(v))
                })
                .map(|s| match s.get("alertstate").map(String::as_str) {
                    Some("firing") => AlertsState::Firing,
                    Some("pending") => AlertsState::Pending,
                    _ => AlertsState::Inactive,
                })
                .max()
                .unwrap_or(AlertsState::Inactive)
        })
        .collect()
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

    #[test]
    fn one_query_for_host_and_cluster_alerts() {
        let wanted = [
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
        ];
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
}
