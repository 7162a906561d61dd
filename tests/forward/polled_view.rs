//! A webhook notification cannot stand in for a polled alert: with a real Alertmanager
//! pair polled and the receiver open, forged notifications claiming a polled alert's
//! fingerprint neither resolve nor restate it.

use harness::alertmanager::{AlertmanagerPair, alert, routing_to_nothing};
use harness::block::{Block, free_port};
use harness::recorder::{calls, statuses};
use harness::wait::{LIMIT, QUIET, Wait};
use serde_json::json;

use crate::forwarder::{Forwarder, forward_config, metric, recording_target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_webhook_events_do_not_touch_a_polled_alert() {
    let block = Block::take();
    let pair = AlertmanagerPair::start(&block, &routing_to_nothing()).await;
    let listen = format!("{}:{}", block.ip(3), free_port(block.ip(3)));
    let state = tempfile::tempdir().unwrap();
    let out = state.path().join("out");
    let mut config = forward_config(&pair.urls(), vec![recording_target("rec", &out)]);
    config.listen = Some(listen.clone());
    let forwarder = Forwarder::start(config, state.path());

    pair.post_both(&json!([alert("Real", &[])])).await;
    Wait::new(LIMIT, "the polled firing event")
        .until(|| (!calls(&out).is_empty()).then_some(()))
        .await;
    let polled = pair.a.alerts().await;
    let fingerprint = polled[0]["fingerprint"].as_str().unwrap().to_owned();
    let starts_at = polled[0]["startsAt"].as_str().unwrap().to_owned();

    // Anyone who reaches the receiver: a resolve of the real alert, and a firing with
    // the real fingerprint and other labels.
    let forged = |status: &str| {
        json!({
            "version": "4", "status": status, "receiver": "hook", "groupKey": "{}",
            "alerts": [{"status": status, "labels": {"alertname": "Forged"}, "annotations": {},
                        "startsAt": starts_at, "endsAt": "2026-01-01T00:00:00Z",
                        "generatorURL": "", "fingerprint": fingerprint}]
        })
    };
    for status in ["resolved", "firing"] {
        let response = reqwest::Client::new()
            .post(format!("http://{listen}/hook"))
            .json(&forged(status))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        statuses(&out),
        [("firing".into(), "Real".into())],
        "the forged events were forwarded"
    );
    assert_eq!(
        metric(
            &forwarder.metrics,
            "tidb_host_agent_webhook_events_ignored_total{reason=\"polled\"}"
        ),
        Some(2.0)
    );
    forwarder.stop().await;
}
