//! Alertmanager forwarding against a real, clustered Alertmanager pair: one event per
//! alert across the pair, a server down, both down, the webhook receiver, and the
//! `alerts` command.

use std::time::Duration;

use harness::alertmanager::{AlertmanagerPair, alert, routing_to_nothing, routing_to_webhook};
use harness::block::{Block, free_port};
use harness::recorder::{calls, statuses};
use harness::wait::{LIMIT, QUIET, Wait};
use serde_json::json;

use crate::forwarder::{Forwarder, forward_config, recording_target};
use tidb_host_agent::forward::cli::{AlertsArgs, output};

fn resolved_now(mut alert: serde_json::Value) -> serde_json::Value {
    alert["endsAt"] = json!("2001-01-01T00:00:00Z");
    alert
}

fn stable(name: &str, ends_at: &str) -> serde_json::Value {
    let mut a = alert(name, &[]);
    a["endsAt"] = json!(ends_at);
    a
}

fn in_an_hour() -> String {
    jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(1))
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_alert_on_both_servers_is_one_firing_and_one_resolved_event() {
    let block = Block::take();
    let pair = AlertmanagerPair::start(&block, &routing_to_nothing()).await;
    let state = tempfile::tempdir().unwrap();
    let (out_a, out_b) = (state.path().join("out-a"), state.path().join("out-b"));
    let config = forward_config(
        &pair.urls(),
        vec![
            recording_target("first", &out_a),
            recording_target("second", &out_b),
        ],
    );

    // Posted separately, so each server sets its own startsAt; both are there before
    // the first poll, so the merge decides which startsAt the event carries.
    let disk_full = alert("DiskFull", &[("instance", "10.0.1.1:9100")]);
    pair.a.post(&json!([disk_full])).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    pair.b.post(&json!([disk_full])).await;
    let a_view = pair.a.alerts().await;
    let b_view = pair.b.alerts().await;
    let earliest = [&a_view[0], &b_view[0]]
        .iter()
        .map(|a| {
            a["startsAt"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .unwrap()
        })
        .min()
        .unwrap();
    assert_eq!(a_view[0]["fingerprint"], b_view[0]["fingerprint"]);
    assert_ne!(
        a_view[0]["startsAt"], b_view[0]["startsAt"],
        "two different startsAt to merge"
    );
    let forwarder = Forwarder::start(config, state.path());

    for out in [&out_a, &out_b] {
        Wait::new(LIMIT, "the firing event")
            .until(|| (!calls(out).is_empty()).then_some(()))
            .await;
    }
    tokio::time::sleep(QUIET).await;
    for out in [&out_a, &out_b] {
        let calls = calls(out);
        assert_eq!(
            statuses(out),
            [("firing".into(), "DiskFull".into())],
            "exactly once"
        );
        let event = calls[0].event();
        assert_eq!(event["status"], "firing");
        assert_eq!(event["labels"]["instance"], "10.0.1.1:9100");
        assert_eq!(event["annotations"]["summary"], "DiskFull is happening");
        assert_eq!(event["fingerprint"], a_view[0]["fingerprint"]);
        assert!(event["endsAt"].is_null());
        let fired_at: jiff::Timestamp = event["startsAt"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            fired_at, earliest,
            "the earliest startsAt of the two servers wins"
        );
    }

    // Resolve it on both, one after the other.
    pair.post_both(&json!([resolved_now(disk_full.clone())]))
        .await;
    for out in [&out_a, &out_b] {
        Wait::new(LIMIT, "the resolved event")
            .until(|| (calls(out).len() == 2).then_some(()))
            .await;
    }
    tokio::time::sleep(QUIET).await;
    for out in [&out_a, &out_b] {
        assert_eq!(
            statuses(out),
            [
                ("firing".into(), "DiskFull".into()),
                ("resolved".into(), "DiskFull".into())
            ]
        );
        let resolved = calls(out)
            .into_iter()
            .find(|c| c.arg(0) == "resolved")
            .unwrap();
        let event = resolved.event();
        let fired_at: jiff::Timestamp = event["startsAt"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            fired_at, earliest,
            "resolved carries the startsAt of its firing"
        );
        assert!(event["endsAt"].is_string());
    }
    assert!(
        calls(&out_a)
            .iter()
            .all(|c| c.env_var("ALERT_NAME") == b"DiskFull")
    );
    forwarder.stop().await;
    let spool = std::fs::read_dir(state.path().join("spool")).unwrap();
    let left: Vec<_> = spool
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".event"))
        .collect();
    assert!(
        left.is_empty(),
        "delivered events leave the spool: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_holds_its_alerts_and_both_down_infers_nothing() {
    let block = Block::take();
    let mut pair = AlertmanagerPair::start(&block, &routing_to_nothing()).await;
    let state = tempfile::tempdir().unwrap();
    let out = state.path().join("out");
    let forwarder = Forwarder::start(
        forward_config(&pair.urls(), vec![recording_target("rec", &out)]),
        state.path(),
    );
    let later = in_an_hour();
    pair.post_both(&json!([stable("OnBoth", &later)])).await;
    pair.a.post(&json!([stable("OnlyOnA", &later)])).await;
    Wait::new(LIMIT, "both firing events")
        .until(|| (calls(&out).len() == 2).then_some(()))
        .await;

    pair.a.stop();
    // Alerts still flow from the other server.
    pair.b.post(&json!([stable("AfterADied", &later)])).await;
    Wait::new(LIMIT, "the alert posted to b")
        .until(|| (calls(&out).len() == 3).then_some(()))
        .await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        statuses(&out),
        [
            ("firing".into(), "AfterADied".into()),
            ("firing".into(), "OnBoth".into()),
            ("firing".into(), "OnlyOnA".into()),
        ],
        "no resolved made up for what the stopped server held"
    );

    pair.b.stop();
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        statuses(&out).len(),
        3,
        "with both servers down nothing is inferred"
    );
    forwarder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_receiver_feeds_the_same_pipeline_once_per_event() {
    let block = Block::take();
    let listen = format!("{}:{}", block.ip(3), free_port(block.ip(3)));
    let pair = AlertmanagerPair::start(
        &block,
        &routing_to_webhook(&format!("http://{listen}/hook")),
    )
    .await;
    let state = tempfile::tempdir().unwrap();
    let out = state.path().join("out");
    let mut config = forward_config(&[], vec![recording_target("rec", &out)]);
    config.listen = Some(listen.clone());
    let forwarder = Forwarder::start(config, state.path());
    Wait::new(LIMIT, "the receiver to listen")
        .until(|| std::net::TcpStream::connect(&listen).ok().map(|_| ()))
        .await;

    let hooked = alert("Hooked", &[]);
    pair.post_both(&json!([hooked])).await;
    Wait::new(LIMIT, "the firing notification")
        .until(|| (!calls(&out).is_empty()).then_some(()))
        .await;
    pair.post_both(&json!([resolved_now(hooked)])).await;
    Wait::new(LIMIT, "the resolved notification")
        .until(|| (calls(&out).len() >= 2).then_some(()))
        .await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        statuses(&out),
        [
            ("firing".into(), "Hooked".into()),
            ("resolved".into(), "Hooked".into())
        ],
        "each event is forwarded once"
    );

    // A notification delivered twice (Alertmanager retries when an answer is lost, and
    // each server of the pair may notify): forwarded once.
    let payload = json!({
        "version": "4", "status": "firing", "receiver": "hook", "groupKey": "{}:{alertname=\"Replayed\"}",
        "alerts": [{"status": "firing", "labels": {"alertname": "Replayed"}, "annotations": {},
                    "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "", "fingerprint": "0123456789abcdef"}]
    });
    let notify = || async {
        let response = reqwest::Client::new()
            .post(format!("http://{listen}/hook"))
            .json(&payload)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    };
    notify().await;
    Wait::new(LIMIT, "the replayed notification")
        .until(|| (calls(&out).len() >= 3).then_some(()))
        .await;
    notify().await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        statuses(&out),
        [
            ("firing".into(), "Hooked".into()),
            ("firing".into(), "Replayed".into()),
            ("resolved".into(), "Hooked".into())
        ]
    );

    // Not a webhook payload: refused, nothing forwarded.
    let response = reqwest::Client::new()
        .post(format!("http://{listen}/hook"))
        .body("{\"alerts\": 5}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    forwarder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_command_prints_the_merged_alerts() {
    let block = Block::take();
    let pair = AlertmanagerPair::start(&block, &routing_to_nothing()).await;
    let later = in_an_hour();
    let mut tikv = stable("TiKV_server_is_down", &later);
    tikv["labels"]["instance"] = json!("10.0.1.10:20180");
    pair.post_both(&json!([tikv])).await;
    pair.b
        .post(&json!([stable("PD_leader_change", &later)]))
        .await;
    let config = forward_config(&pair.urls(), Vec::new());

    let args = AlertsArgs {
        format: Some(
            "{{ alertname }}|{{ labels.instance }}|{{ severity }}|{{ servers | length }}".into(),
        ),
        json: false,
    };
    let printed = output(&config, &args).await.unwrap();
    assert!(printed.failures.is_empty());
    let mut lines: Vec<&str> = printed.text.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "PD_leader_change||critical|1",
            "TiKV_server_is_down|10.0.1.10:20180|critical|2"
        ]
    );

    let json_args = AlertsArgs {
        format: None,
        json: true,
    };
    let printed = output(&config, &json_args).await.unwrap();
    let alerts: Vec<serde_json::Value> = serde_json::from_str(&printed.text).unwrap();
    assert_eq!(
        alerts.len(),
        2,
        "one entry per alert, merged across the pair"
    );
    let tikv = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "TiKV_server_is_down")
        .unwrap();
    assert_eq!(tikv["state"], "active");
    assert_eq!(tikv["servers"], json!(pair.urls()));
    assert_eq!(tikv["fingerprint"], pair.a.alerts().await[0]["fingerprint"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_matchers_and_the_silenced_switch_reach_alertmanager() {
    let block = Block::take();
    let pair = AlertmanagerPair::start(&block, &routing_to_nothing()).await;
    let later = in_an_hour();
    let mut warning = stable("Disk_will_fill", &later);
    warning["labels"]["level"] = json!("warning");
    let critical = stable("TiDB_server_is_down", &later);
    let silenced = stable("Noisy_alert", &later);
    pair.post_both(&json!([warning, critical, silenced])).await;
    // A silence on one server is gossiped to the other.
    let silence = json!({
        "matchers": [{"name": "alertname", "value": "Noisy_alert", "isRegex": false, "isEqual": true}],
        "startsAt": jiff::Timestamp::now().to_string(), "endsAt": later,
        "createdBy": "test", "comment": "quiet"
    });
    let response = reqwest::Client::new()
        .post(format!("{}/api/v2/silences", pair.a.url))
        .json(&silence)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());

    let names = |config: tidb_host_agent::config::AlertmanagerConfig| async move {
        let args = AlertsArgs {
            format: Some("{{ alertname }} {{ state }}".into()),
            json: false,
        };
        let printed = output(&config, &args).await.unwrap();
        let mut lines: Vec<String> = printed.text.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    Wait::new(LIMIT, "the silence to apply on both servers")
        .until_async(|| async {
            let lines = names(forward_config(&pair.urls(), Vec::new())).await;
            (lines == ["Disk_will_fill active", "TiDB_server_is_down active"]).then_some(())
        })
        .await;

    let mut critical_only = forward_config(&pair.urls(), Vec::new());
    critical_only.filter = vec!["level=\"critical\"".into()];
    assert_eq!(
        names(critical_only.clone()).await,
        ["TiDB_server_is_down active"]
    );

    critical_only.silenced = true;
    assert_eq!(
        names(critical_only).await,
        ["Noisy_alert suppressed", "TiDB_server_is_down active"]
    );

    // A matcher Alertmanager refuses: every server fails, and says why.
    let mut broken = forward_config(&pair.urls(), Vec::new());
    broken.filter = vec!["level=~\"(\"".into()];
    let err = output(&broken, &AlertsArgs::default()).await.unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("no Alertmanager answered"), "{text}");
    assert!(text.contains("400"), "{text}");
}
