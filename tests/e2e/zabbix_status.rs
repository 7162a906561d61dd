//! Issue 17: `status` and the Zabbix agent 2 include, on the sandbox. The agent on
//! 127.N.1.10 publishes its snapshot; the real `zabbix_agent2 -t` runs the shipped include
//! (only the binary and snapshot paths rewritten) before and after its TiKV stops, and
//! `status` shows why the key is 1: the TiKV's `instance`.

use std::path::Path;
use std::process::{Command, Output};

use harness::catalog;
use harness::sandbox::{Host, Sandbox};

use crate::agents::{AgentSpec, wait_until};
use crate::expect;

const AGENT: &str = env!("CARGO_BIN_EXE_tidb-host-agent");
const INCLUDE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/packaging/zabbix/tidb-host-agent.conf"
);

/// A Zabbix agent 2 configuration of its own, including a copy of the shipped include
/// with only the binary's and the snapshot's paths changed.
struct ZabbixAgent {
    dir: tempfile::TempDir,
}

impl ZabbixAgent {
    fn new(snapshot: &Path) -> ZabbixAgent {
        let dir = tempfile::tempdir().expect("temp dir");
        let shipped = std::fs::read_to_string(INCLUDE).expect("read the shipped include");
        let from = "/usr/bin/tidb-host-agent zabbix ";
        assert_eq!(
            shipped.matches(from).count(),
            4,
            "every user parameter calls `{from}`"
        );
        let include = shipped.replace(
            from,
            &format!("{AGENT} zabbix --snapshot {} ", snapshot.display()),
        );
        let include_path = dir.path().join("tidb-host-agent.conf");
        std::fs::write(&include_path, include).expect("write the include");
        let conf = format!(
            "Hostname=tidb-host-agent-test\nServer=127.0.0.1\nLogType=console\n\
             PidFile={d}/agent.pid\nControlSocket={d}/agent.sock\nInclude={}\n",
            include_path.display(),
            d = dir.path().display(),
        );
        std::fs::write(dir.path().join("zabbix_agent2.conf"), conf).expect("write the conf");
        ZabbixAgent { dir }
    }

    /// `zabbix_agent2 -c CONF -t ITEM`: the value's type and text, as in `[s|0]`.
    fn test_item(&self, item: &str) -> (String, String) {
        let out = Command::new("zabbix_agent2")
            .arg("-c")
            .arg(self.dir.path().join("zabbix_agent2.conf"))
            .args(["-t", item])
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run zabbix_agent2 (scripts/install-deps.sh installs it): {e}")
            });
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "zabbix_agent2 -t {item}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let rest = text
            .strip_prefix(item)
            .unwrap_or_else(|| panic!("zabbix_agent2 -t {item}: {text:?}"))
            .trim();
        let inner = rest
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or_else(|| panic!("zabbix_agent2 -t {item}: {text:?}"));
        let (kind, value) = inner
            .split_once('|')
            .unwrap_or_else(|| panic!("zabbix_agent2 -t {item}: {text:?}"));
        (kind.to_owned(), value.to_owned())
    }

    fn value(&self, item: &str) -> String {
        let (kind, value) = self.test_item(item);
        assert_eq!(kind, "s", "{item}: a text value, got [{kind}|{value}]");
        value
    }
}

fn status(snapshot: &Path, args: &[&str]) -> Output {
    Command::new(AGENT)
        .arg("status")
        .arg("--snapshot")
        .arg(snapshot)
        .args(args)
        .env_remove("TIDB_HOST_AGENT_SNAPSHOT")
        .output()
        .expect("run status")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn zabbix_agent_and_status_show_a_stopped_tikv_and_why() {
    let sb = Sandbox::start().await;
    sb.wait_until_ready().await;
    let agent = AgentSpec::new(&sb, Host::Ten).start();
    let healthy = expect::healthy(&sb, Host::Ten);
    wait_until(&[(&agent, healthy.clone())], "healthy").await;
    let published = agent.published();
    let zabbix = ZabbixAgent::new(&published);
    let tikv_down = catalog::key("TiKV_server_is_down");
    let degraded = catalog::degraded_key();

    // Discovery: every key but the agent's own, with its component and level.
    let lld: Vec<serde_json::Value> =
        serde_json::from_str(&zabbix.value("tidb.alert.discovery")).expect("LLD JSON");
    let discovered: std::collections::BTreeSet<&str> = lld
        .iter()
        .map(|o| o["{#KEY}"].as_str().expect("{#KEY}"))
        .collect();
    let mut want = healthy.keys();
    want.remove(degraded.as_str());
    assert_eq!(discovered, want);
    let rule = catalog::rule("TiKV_server_is_down");
    let tikv = lld
        .iter()
        .find(|o| o["{#KEY}"] == tikv_down.as_str())
        .expect("the TiKV key");
    assert_eq!(tikv["{#COMPONENT}"], "tikv");
    assert_eq!(tikv["{#LEVEL}"], rule.level.as_str());

    let item = format!("tidb.alert[{tikv_down}]");
    assert_eq!(zabbix.value(&item), "0");
    assert_eq!(zabbix.value("tidb.agent.degraded"), "0");
    assert_eq!(zabbix.value("tidb.agent.stale"), "0");
    // An unknown key is an error text, never a number.
    let unknown = zabbix.value("tidb.alert[TiDB.tikv.No_such_alert]");
    assert!(
        unknown.starts_with("ZBX_NOTSUPPORTED: no key \"TiDB.tikv.No_such_alert\""),
        "{unknown:?}"
    );
    let calm = status(&published, &[]);
    assert_eq!(calm.status.code(), Some(0), "{}", text(&calm.stderr));

    // The fault: the key turns 1, and `status` says why.
    let tikv_addr = sb.addr(Host::Ten, 20180);
    sb.fake(tikv_addr).stop().await;
    wait_until(&[(&agent, healthy.clone().firing(&tikv_down))], "TiKV down").await;
    assert_eq!(zabbix.value(&item), "1");

    let table = status(&published, &[]);
    assert_eq!(table.status.code(), Some(1), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    let line = table
        .lines()
        .find(|l| l.starts_with(&format!("{tikv_down} ")))
        .unwrap_or_else(|| panic!("no {tikv_down} in:\n{table}"));
    let why = format!("instance=\"{tikv_addr}\"");
    assert!(
        line.contains(" 1 ") && line.contains("firing") && line.contains(&why),
        "{line}"
    );
    assert!(line.contains("value=0"), "{line}");

    let json = status(&published, &["--json"]);
    assert_eq!(json.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("status --json");
    let entry = doc["values"]
        .as_array()
        .expect("values")
        .iter()
        .find(|v| v["key"] == tikv_down.as_str())
        .expect("the TiKV key");
    assert_eq!(
        entry["reasons"][0]["labels"]["instance"],
        tikv_addr.to_string()
    );
    assert_eq!(entry["reasons"][0]["value"], "0");
    assert!(
        entry["reasons"][0]["labels"].get("__name__").is_none()
            && entry["reasons"][0]["labels"]
                .get("tidb_host_agent_rule")
                .is_none(),
        "{entry}"
    );
    // Keys at 0 carry no reasons.
    let calm_key = catalog::prometheus_key();
    let calm_entry = doc["values"]
        .as_array()
        .expect("values")
        .iter()
        .find(|v| v["key"] == calm_key.as_str())
        .expect("the prometheus key");
    assert!(calm_entry.get("reasons").is_none(), "{calm_entry}");

    // A stale snapshot and a missing one: errors for status, ZBX_NOTSUPPORTED or stale=1
    // for Zabbix.
    let stale_dir = tempfile::tempdir().expect("temp dir");
    let stale = stale_dir.path().join("snapshot.json");
    let mut old: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&published).expect("read")).expect("json");
    old["timestamp"] = "2020-01-01T00:00:00Z".into();
    std::fs::write(&stale, old.to_string()).expect("write");
    let out = status(&stale, &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("is stale"),
        "{}",
        text(&out.stderr)
    );
    let stale_zabbix = ZabbixAgent::new(&stale);
    assert_eq!(stale_zabbix.value("tidb.agent.stale"), "1");
    assert!(stale_zabbix.value(&item).starts_with("ZBX_NOTSUPPORTED: "));

    let missing = stale_dir.path().join("none.json");
    let out = status(&missing, &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("the daemon is not running"),
        "{}",
        text(&out.stderr)
    );
    let missing_zabbix = ZabbixAgent::new(&missing);
    assert_eq!(missing_zabbix.value("tidb.agent.stale"), "1");
    assert!(
        missing_zabbix
            .value("tidb.alert.discovery")
            .starts_with("ZBX_NOTSUPPORTED: ")
    );

    sb.fake(tikv_addr).start().await;
}
