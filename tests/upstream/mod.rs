//! Where TiDB's upstream rule files are: the project's `shared/tidb-rules` data directory,
//! which sits beside the repository (`../shared`). A checkout elsewhere finds it through
//! `TIDB_RULES_DIR`, or in any parent directory's `shared/`.

use std::path::{Path, PathBuf};

pub fn rules_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = std::env::var_os("TIDB_RULES_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            manifest
                .ancestors()
                .skip(1)
                .map(|a| a.join("shared/tidb-rules")),
        );
    let mut tried = Vec::new();
    for dir in candidates {
        if dir.join("tidb.rules.yml").is_file() {
            return dir;
        }
        tried.push(dir.display().to_string());
    }
    panic!(
        "TiDB's upstream rule files (shared/tidb-rules, beside the repository) are missing; \
         set TIDB_RULES_DIR. Tried: {}",
        tried.join(", ")
    )
}
