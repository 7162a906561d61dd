//! Which labels an expression's result keeps: a Prometheus alert carries its expression's
//! result labels, so an alert of an expression that aggregates `instance` away says nothing
//! about which host it is on.

use promql_parser::parser::token::{T_BOTTOMK, T_COUNT_VALUES, T_LIMIT_RATIO, T_LIMITK, T_TOPK};
use promql_parser::parser::{Expr, LabelModifier, VectorMatchCardinality};

/// Whether every series of `expr`'s result carries `label` whenever the selected series
/// do. Conservative: `false` whenever it cannot be sure.
pub fn keeps_label(expr: &Expr, label: &str) -> bool {
    let named = |labels: &promql_parser::label::Labels| labels.labels.iter().any(|l| l == label);
    match expr {
        Expr::VectorSelector(_) | Expr::MatrixSelector(_) => true,
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => false,
        Expr::Paren(paren) => keeps_label(&paren.expr, label),
        Expr::Unary(unary) => keeps_label(&unary.expr, label),
        Expr::Subquery(subquery) => keeps_label(&subquery.expr, label),
        Expr::Aggregate(aggregate) => {
            let op = aggregate.op.id();
            if [T_TOPK, T_BOTTOMK, T_LIMITK, T_LIMIT_RATIO].contains(&op) {
                return keeps_label(&aggregate.expr, label);
            }
            let grouped = match &aggregate.modifier {
                Some(LabelModifier::Include(labels)) => named(labels),
                Some(LabelModifier::Exclude(labels)) => {
                    !named(labels) && keeps_label(&aggregate.expr, label)
                }
                None => false,
            };
            grouped && (op != T_COUNT_VALUES || keeps_label(&aggregate.expr, label))
        }
        Expr::Call(call) => {
            let name = call.func.name;
            if matches!(
                name,
                "absent" | "absent_over_time" | "vector" | "scalar" | "time"
            ) || call.func.return_type != promql_parser::parser::value::ValueType::Vector
            {
                return false;
            }
            if matches!(name, "label_replace" | "label_join")
                && call
                    .args
                    .args
                    .get(1)
                    .is_some_and(|dst| matches!(&**dst, Expr::StringLiteral(s) if s.val == label))
            {
                return false;
            }
            call.args
                .args
                .iter()
                .find(|arg| {
                    matches!(
                        arg.value_type(),
                        promql_parser::parser::value::ValueType::Vector
                            | promql_parser::parser::value::ValueType::Matrix
                    )
                })
                .is_some_and(|arg| keeps_label(arg, label))
        }
        Expr::Binary(binary) => {
            use promql_parser::parser::value::ValueType::Scalar;
            let (lhs, rhs) = (&*binary.lhs, &*binary.rhs);
            match (lhs.value_type() == Scalar, rhs.value_type() == Scalar) {
                (true, true) => return false,
                (true, false) => return keeps_label(rhs, label),
                (false, true) => return keeps_label(lhs, label),
                (false, false) => {}
            }
            let modifier = binary.modifier.as_ref();
            if binary.op.is_set_operator() {
                return match binary.op.id() {
                    promql_parser::parser::token::T_LOR => {
                        keeps_label(lhs, label) && keeps_label(rhs, label)
                    }
                    _ => keeps_label(lhs, label),
                };
            }
            let card = modifier.map(|m| &m.card);
            let matching = modifier.and_then(|m| m.matching.as_ref());
            match card {
                Some(VectorMatchCardinality::ManyToOne(include)) => {
                    keeps_label(lhs, label) || named(include) && keeps_label(rhs, label)
                }
                Some(VectorMatchCardinality::OneToMany(include)) => {
                    keeps_label(rhs, label) || named(include) && keeps_label(lhs, label)
                }
                _ => match matching {
                    Some(LabelModifier::Include(on)) => named(on) && keeps_label(lhs, label),
                    Some(LabelModifier::Exclude(ignoring)) => {
                        !named(ignoring) && keeps_label(lhs, label)
                    }
                    None => keeps_label(lhs, label),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keeps(text: &str) -> bool {
        match crate::promql::parse(text) {
            Ok(expr) => keeps_label(&expr, "instance"),
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn selectors_functions_and_comparisons_keep_it() {
        assert!(keeps("probe_success{group=\"tikv\"} == 0"));
        assert!(keeps(
            "changes(process_start_time_seconds{job=\"pd\"}[5m]) > 0"
        ));
        assert!(keeps(
            "sum(rate(tikv_thread_cpu_seconds_total{name=~\"raftstore_.*\"}[1m])) by (instance) > 1.6"
        ));
        assert!(keeps("sum without (job) (up) > 1"));
        assert!(keeps("topk(1, up)"));
        assert!(keeps("(up == 0) and on (instance) (node_load1 > 1)"));
        assert!(keeps("up * on (instance) group_left (version) build_info"));
        assert!(keeps(
            "histogram_quantile(0.99, sum(rate(x_bucket[1m])) by (le, instance)) > 1"
        ));
        assert!(keeps("1 - up"));
    }

    #[test]
    fn aggregations_and_absent_lose_it() {
        assert!(!keeps("sum(up) == 0"));
        assert!(!keeps("sum by (job) (up) == 0"));
        assert!(!keeps("sum without (instance) (up)"));
        assert!(!keeps("absent(up{job=\"pd\"})"));
        assert!(!keeps("up + on (job) sum by (job) (up)"));
        assert!(!keeps("vector(1)"));
        assert!(!keeps("label_replace(up, \"instance\", \"x\", \"\", \"\")"));
        assert!(!keeps("up or sum(up)"));
        assert!(!keeps(
            "histogram_quantile(0.99, sum(rate(x_bucket[1m])) by (le)) > 1"
        ));
    }
}
