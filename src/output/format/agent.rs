//! `metric=KEY|value=0|type=gauge|tags=status:LEVEL`: what the old cron script printed.

use std::fmt::Write;

use crate::snapshot::Snapshot;

pub fn render(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = String::with_capacity(snapshot.entries.len() * 80);
    for e in &snapshot.entries {
        let _ = writeln!(
            out,
            "metric={}|value={}|type=gauge|tags=status:{}",
            e.key, e.value, e.level
        );
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_sorted_line_per_key() {
        let text = String::from_utf8(super::render(&super::super::fixture::snapshot())).unwrap();
        assert_eq!(
            text,
            "metric=TiDB.pd.PD_server_is_down|value=0|type=gauge|tags=status:emergency\n\
             metric=TiDB.tikv.TiKV_server_is_down|value=1|type=gauge|tags=status:emergency\n"
        );
    }
}
