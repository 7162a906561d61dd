//! `KEY 0`: the simplest form for agents that read name/value pairs.

use std::fmt::Write;

use crate::snapshot::Snapshot;

pub fn render(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = String::with_capacity(snapshot.entries.len() * 48);
    for e in &snapshot.entries {
        let _ = writeln!(out, "{} {}", e.key, e.value);
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_space_value() {
        let text = String::from_utf8(super::render(&super::super::fixture::snapshot())).unwrap();
        assert_eq!(
            text,
            "TiDB.pd.PD_server_is_down 0\nTiDB.tikv.TiKV_server_is_down 1\n"
        );
    }
}
