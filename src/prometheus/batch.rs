//! Several rules in one query, so that a host asks Prometheus a few times a cycle rather
//! than once per rule: each rule's series are tagged with the rule's position through
//! `label_replace`, the rules are joined with `or`, and the answer is split back by tag.
//!
//! The tags differ between rules, so `or` never drops a series of one rule for a series
//! of another, and a rule is true exactly when its query alone would be.

use std::fmt::Write as _;

use super::evidence;
use super::server::QueryAnswer;
use crate::snapshot::Reason;

/// The label that carries a series' rule position within its batch.
pub const RULE_LABEL: &str = "tidb_host_agent_rule";

/// `label_replace((q0), "tidb_host_agent_rule", "0", "", "") or …`: every query tagged
/// with its position. Each must be an instant-vector expression.
pub fn compose<'a>(queries: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for (i, query) in queries.into_iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        // Writing into a String cannot fail.
        let _ = write!(
            out,
            "label_replace(({query}), \"{RULE_LABEL}\", \"{i}\", \"\", \"\")"
        );
    }
    out
}

/// The series each of the `rules` batched queries returned, as reasons
/// ([`evidence::reasons`]): empty for a rule that returned none.
pub fn split(answer: &QueryAnswer, rules: usize) -> Vec<Vec<Reason>> {
    let mut split: Vec<Vec<Reason>> = vec![Vec::new(); rules];
    for (series, value) in answer.samples() {
        let position = series.get(RULE_LABEL).and_then(|p| p.parse::<usize>().ok());
        if let Some(slot) = position.and_then(|p| split.get_mut(p)) {
            if slot.len() < evidence::MAX_REASONS {
                slot.push(evidence::reason(series, value));
            }
        }
    }
    split
}

/// The series of one `answer` tagged with `position`: one member's own answer, when that
/// member is not a condition but a query whose series are read for themselves (the pair's
/// `ALERTS`).
pub fn part(answer: &QueryAnswer, position: usize) -> QueryAnswer {
    let tag = position.to_string();
    let (series, values) = answer
        .samples()
        .filter(|(series, _)| series.get(RULE_LABEL) == Some(&tag))
        .map(|(series, value)| (series.clone(), value.to_owned()))
        .unzip();
    QueryAnswer { series, values }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::server::Labels;

    fn series(labels: &[(&str, &str)]) -> Labels {
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn each_query_is_tagged_with_its_position_and_joined_with_or() {
        let q = compose(["up == 0", "a > 1 or b > 2"]);
        assert_eq!(
            q,
            "label_replace((up == 0), \"tidb_host_agent_rule\", \"0\", \"\", \"\") or \
             label_replace((a > 1 or b > 2), \"tidb_host_agent_rule\", \"1\", \"\", \"\")"
        );
        // And it is PromQL: an `or` of two label_replace calls.
        let parsed = crate::promql::parse(&q).expect("valid PromQL");
        assert_eq!(
            parsed.value_type(),
            promql_parser::parser::value::ValueType::Vector
        );
    }

    #[test]
    fn a_rule_fired_when_a_series_carries_its_position() {
        let fired = |answer: &QueryAnswer, rules| -> Vec<bool> {
            split(answer, rules).iter().map(|r| !r.is_empty()).collect()
        };
        let answer = QueryAnswer {
            series: vec![
                series(&[("instance", "10.0.1.1:20160"), (RULE_LABEL, "2")]),
                series(&[("instance", "10.0.1.1:20180"), (RULE_LABEL, "2")]),
                series(&[(RULE_LABEL, "0")]),
                // Not from a batch, or out of range: ignored.
                series(&[("instance", "10.0.1.1:9100")]),
                series(&[(RULE_LABEL, "7")]),
                series(&[(RULE_LABEL, "x")]),
            ],
            values: vec!["0".into(), "0".into(), "1".into()],
        };
        assert_eq!(fired(&answer, 4), [true, false, true, false]);
        assert_eq!(fired(&QueryAnswer::default(), 2), [false, false]);
        // Each rule's reasons are its own series, without the marker.
        let reasons = split(&answer, 4);
        assert_eq!(
            reasons[2][0].to_string(),
            r#"instance="10.0.1.1:20160" value=0"#
        );
        assert_eq!(reasons[0][0].to_string(), "value=1");
    }

    #[test]
    fn a_part_is_the_series_of_one_position_with_their_values() {
        let answer = QueryAnswer {
            series: vec![
                series(&[("alertname", "A"), (RULE_LABEL, "1")]),
                series(&[("instance", "x"), (RULE_LABEL, "0")]),
                series(&[("alertname", "B"), (RULE_LABEL, "1")]),
            ],
            values: vec!["1".into(), "0".into(), "2".into()],
        };
        let part = part(&answer, 1);
        assert_eq!(
            part.series,
            [answer.series[0].clone(), answer.series[2].clone()]
        );
        assert_eq!(part.values, ["1", "2"]);
        assert!(super::part(&answer, 2).series.is_empty());
    }
}
