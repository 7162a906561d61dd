//! Where TiDB's upstream rule files are: `tests/data/upstream`, copies kept in the
//! repository with their sources in `SOURCES.md` there, so that a clone tests itself.

use std::path::PathBuf;

pub fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/upstream")
}
