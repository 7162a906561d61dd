//! What made a rule true, kept small: the first few series of its answer, each reduced to
//! its labels and value, for `status` and the `json` format (`reasons`).

use super::batch::RULE_LABEL;
use super::server::Labels;
use crate::snapshot::Reason;

/// Series kept per key.
pub const MAX_REASONS: usize = 3;
/// Labels kept per series; the rest are dropped (sorted by name, so the choice is stable).
const MAX_LABELS: usize = 12;
/// Characters kept of a label value or a sample value; longer ones end with `…`.
const MAX_CHARS: usize = 120;

/// Up to [`MAX_REASONS`] reasons from `samples`. Empty exactly when `samples` is.
pub fn reasons<'a>(samples: impl IntoIterator<Item = (&'a Labels, &'a str)>) -> Vec<Reason> {
    samples
        .into_iter()
        .take(MAX_REASONS)
        .map(|(labels, value)| reason(labels, value))
        .collect()
}

/// One series without `__name__` and the batch marker, bounded in size.
pub fn reason(labels: &Labels, value: &str) -> Reason {
    Reason {
        labels: labels
            .iter()
            .filter(|(name, _)| name.as_str() != "__name__" && name.as_str() != RULE_LABEL)
            .take(MAX_LABELS)
            .map(|(name, v)| (truncated(name), truncated(v)))
            .collect(),
        value: truncated(value),
    }
}

fn truncated(text: &str) -> String {
    match text.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_few_series_without_name_and_batch_marker() {
        let series = [
            labels(&[
                ("__name__", "up"),
                ("instance", "10.0.1.5:20180"),
                (RULE_LABEL, "2"),
            ]),
            labels(&[("instance", "10.0.1.5:20160")]),
            labels(&[("instance", "a")]),
            labels(&[("instance", "b")]),
        ];
        let got = reasons(series.iter().map(|l| (l, "0")));
        assert_eq!(got.len(), MAX_REASONS);
        assert_eq!(got[0].to_string(), r#"instance="10.0.1.5:20180" value=0"#);
        assert_eq!(got[1].to_string(), r#"instance="10.0.1.5:20160" value=0"#);
        assert!(reasons(std::iter::empty()).is_empty());
        // A series without labels is still a reason: the rule is true.
        assert_eq!(reasons([(&Labels::new(), "1")])[0].to_string(), "value=1");
    }

    #[test]
    fn long_values_and_many_labels_are_bounded() {
        let long = "x".repeat(1000);
        let many: Labels = (0..40)
            .map(|i| (format!("l{i:02}"), long.clone()))
            .collect();
        let r = reason(&many, &long);
        assert_eq!(r.labels.len(), MAX_LABELS);
        assert!(
            r.labels
                .values()
                .all(|v| v.chars().count() == MAX_CHARS + 1)
        );
        assert!(r.value.ends_with('…'));
        // Multi-byte characters are cut on a character boundary.
        let wide = "é".repeat(500);
        assert_eq!(truncated(&wide).chars().count(), MAX_CHARS + 1);
    }
}
