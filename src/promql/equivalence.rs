//! When two rule expressions are the same: Prometheus prints a rule's expression in its own
//! way (`/api/v1/rules` gives `query` re-formatted), so texts never compare; their parsed
//! forms do, once what printing changes is erased.

use promql_parser::parser::{Expr, NumberLiteral};

use super::PromqlError;
use super::host_scope::{children_mut, normalize};

/// `text` parsed, with the differences that printing introduces erased: matchers sorted,
/// empty `by ()` and `ignoring ()` dropped, and parentheses removed (the tree already holds
/// the precedence they gave).
pub fn canonical(text: &str) -> Result<Expr, PromqlError> {
    let mut expr = super::parse(text)?;
    erase_parens(&mut expr);
    normalize(&mut expr);
    Ok(expr)
}

/// Both parse, and to the same expression.
pub fn same(a: &str, b: &str) -> bool {
    matches!((canonical(a), canonical(b)), (Ok(a), Ok(b)) if a == b)
}

fn erase_parens(expr: &mut Expr) {
    while let Expr::Paren(paren) = expr {
        let inner = std::mem::replace(
            &mut *paren.expr,
            Expr::NumberLiteral(NumberLiteral { val: 0.0 }),
        );
        *expr = inner;
    }
    for child in children_mut(expr) {
        erase_parens(child);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printing_differences_are_not_differences() {
        // As written in tikv.rules.yml, and as Prometheus 2.x prints it back.
        assert!(same(
            "sum(increase(tikv_gcworker_gc_tasks_vec{task=\"gc\"}[1d])) < 1 and (sum(increase(tikv_gc_compaction_filter_perform[1d])) < 1 and sum(increase(tikv_engine_event_total{cf=\"write\",db=\"kv\",type=\"compaction\"}[1d])) >= 1)",
            "sum(increase(tikv_gcworker_gc_tasks_vec{task=\"gc\"}[1d])) < 1 and (sum(increase(tikv_gc_compaction_filter_perform[1d])) < 1 and sum(increase(tikv_engine_event_total{cf=\"write\",db=\"kv\",type=\"compaction\"}[1d])) >= 1)",
        ));
        assert!(same(
            "probe_success{group=\"tikv\"} == 0",
            "(probe_success{group=\"tikv\"}\n  == 0)"
        ));
        assert!(same(
            "sum(rate(x{b=\"2\",a=\"1\"}[5m])) by (instance) > 1e3",
            "sum by (instance) (rate(x{a=\"1\",b=\"2\"}[300s])) > 1000"
        ));
        assert!(same("sum by () (up)", "sum(up)"));
    }

    #[test]
    fn different_meanings_differ() {
        assert!(!same("up == 0", "up == 1"));
        assert!(!same("up{job=\"tikv\"} == 0", "up{job=\"tidb\"} == 0"));
        assert!(!same("rate(x[5m]) > 1", "rate(x[1m]) > 1"));
        assert!(!same("sum by (instance) (x)", "sum(x)"));
        assert!(!same("a + b * c", "(a + b) * c"));
        assert!(
            !same("up ==", "up =="),
            "an expression that does not parse is never the same"
        );
    }
}
