//! The shipped Zabbix 6.0 template's structure (issue 17): the discovery rule and item
//! prototype the include serves, trigger severities that follow `{#LEVEL}`, and the
//! stale-snapshot and `Agent_degraded` triggers; and the include defines exactly the
//! item keys the template uses.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde_json::Value;

const TEMPLATE: &str = include_str!("../packaging/zabbix/template_tidb_host_agent.yaml");
const INCLUDE: &str = include_str!("../packaging/zabbix/tidb-host-agent.conf");

fn template() -> Value {
    let doc: Value = yaml_serde::from_str(TEMPLATE).expect("the template is YAML");
    let export = &doc["zabbix_export"];
    assert_eq!(export["version"], "6.0");
    let templates = export["templates"].as_array().expect("templates");
    assert_eq!(templates.len(), 1);
    templates[0].clone()
}

fn list<'a>(value: &'a Value, field: &str) -> &'a Vec<Value> {
    value[field]
        .as_array()
        .unwrap_or_else(|| panic!("no list {field} in {value}"))
}

/// The template's name as trigger expressions must spell it.
fn host(template: &Value) -> String {
    template["template"]
        .as_str()
        .expect("template name")
        .to_owned()
}

#[test]
fn discovery_item_prototype_and_severity_by_level() {
    let template = template();
    let host = host(&template);
    let rules = list(&template, "discovery_rules");
    assert_eq!(rules.len(), 1);
    let rule = &rules[0];
    assert_eq!(rule["key"], "tidb.alert.discovery");
    let prototypes = list(rule, "item_prototypes");
    assert_eq!(prototypes.len(), 1);
    let prototype = &prototypes[0];
    assert_eq!(prototype["key"], "tidb.alert[{#KEY}]");
    let triggers = list(prototype, "trigger_prototypes");
    assert_eq!(triggers.len(), 1);
    let trigger = &triggers[0];
    assert_eq!(
        trigger["expression"],
        format!("last(/{host}/tidb.alert[{{#KEY}}])=1")
    );
    let name = trigger["name"].as_str().expect("trigger name");

    // The severity each level gets: the prototype's own, unless an override whose
    // filter matches the level changes the trigger prototype's.
    let overrides = list(rule, "overrides");
    let severity = |level: &str| -> String {
        for o in overrides {
            let conditions = list(&o["filter"], "conditions");
            let matches = conditions.iter().all(|c| {
                assert_eq!(c["macro"], "{#LEVEL}");
                let re = regex::Regex::new(c["value"].as_str().unwrap()).unwrap();
                re.is_match(level)
            });
            if !matches {
                continue;
            }
            for op in list(o, "operations") {
                assert_eq!(op["operationobject"], "TRIGGER_PROTOTYPE");
                assert_eq!(op["operator"], "LIKE");
                let like = op["value"].as_str().unwrap();
                if name.contains(like) {
                    return op["severity"].as_str().unwrap().to_owned();
                }
            }
        }
        trigger["priority"].as_str().unwrap().to_owned()
    };
    let by_level: BTreeMap<&str, String> = ["emergency", "critical", "warning"]
        .into_iter()
        .map(|l| (l, severity(l)))
        .collect();
    assert_eq!(
        by_level,
        BTreeMap::from([
            ("emergency", "DISASTER".to_owned()),
            ("critical", "HIGH".to_owned()),
            ("warning", "WARNING".to_owned()),
        ])
    );
}

#[test]
fn stale_snapshot_and_degraded_triggers() {
    let template = template();
    let host = host(&template);
    let items = list(&template, "items");
    let trigger_of = |key: &str| -> Value {
        let item = items
            .iter()
            .find(|i| i["key"] == key)
            .unwrap_or_else(|| panic!("no item {key}"));
        let triggers = list(item, "triggers");
        assert_eq!(triggers.len(), 1, "{key}");
        triggers[0].clone()
    };
    let stale = trigger_of("tidb.agent.stale");
    assert!(
        stale["expression"]
            .as_str()
            .unwrap()
            .starts_with(&format!("last(/{host}/tidb.agent.stale)=1")),
        "{stale}"
    );
    let degraded = trigger_of("tidb.agent.degraded");
    assert_eq!(
        degraded["expression"],
        format!("last(/{host}/tidb.agent.degraded)=1")
    );
    for t in [&stale, &degraded] {
        assert!(
            ["WARNING", "AVERAGE", "HIGH", "DISASTER"].contains(&t["priority"].as_str().unwrap()),
            "{t}"
        );
    }
}

#[test]
fn the_include_serves_every_key_the_template_uses_and_uuids_are_unique() {
    let defined: Vec<&str> = INCLUDE
        .lines()
        .filter_map(|l| l.strip_prefix("UserParameter="))
        .map(|l| l.split_once(',').expect("KEY,command").0)
        .collect();
    assert_eq!(
        defined,
        [
            "tidb.alert.discovery",
            "tidb.alert[*]",
            "tidb.agent.degraded",
            "tidb.agent.stale"
        ]
    );
    // Every user parameter runs the agent's own subcommand, no shell pipeline.
    for line in INCLUDE.lines().filter(|l| l.starts_with("UserParameter=")) {
        let command = line.split_once(',').unwrap().1;
        assert!(
            command.starts_with("/usr/bin/tidb-host-agent zabbix ")
                && !command.contains(['|', ';', '`', '>', '<']),
            "{line}"
        );
    }
    let mut uuids: Vec<&str> = TEMPLATE
        .lines()
        .filter_map(|l| {
            l.trim_start()
                .trim_start_matches("- ")
                .strip_prefix("uuid: ")
        })
        .collect();
    assert!(
        uuids
            .iter()
            .all(|u| u.len() == 32 && u.chars().all(|c| c.is_ascii_hexdigit()))
    );
    let count = uuids.len();
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), count, "uuids are unique");
}
