//! Forwarding degrades per part: a receiver that cannot listen (its address taken) costs
//! only the receiver; polling and delivery go on, a metric shows it, and the receiver
//! starts once the address is free.

use harness::alertmanager::{AlertmanagerPair, alert, routing_to_nothing};
use harness::block::{Block, free_port};
use harness::recorder::statuses;
use harness::wait::{LIMIT, Wait};
use serde_json::json;

use crate::forwarder::{Forwarder, forward_config, metric, recording_target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_cannot_listen_stops_only_itself() {
    let block = Block::take();
    let pair = AlertmanagerPair::start(&block, &routing_to_nothing()).await;
    let listen = format!("{}:{}", block.ip(3), free_port(block.ip(3)));
    let taken = std::net::TcpListener::bind(&listen).unwrap();
    let state = tempfile::tempdir().unwrap();
    let out = state.path().join("out");
    let mut config = forward_config(&pair.urls(), vec![recording_target("rec", &out)]);
    config.listen = Some(listen.clone());
    let forwarder = Forwarder::start(config, state.path());
    let receiver_up = |metrics| {
        metric(
            metrics,
            "tidb_host_agent_forward_part_up{part=\"receiver\"}",
        )
    };

    pair.post_both(&json!([alert("Polled", &[])])).await;
    Wait::new(LIMIT, "the polled alert, with the receiver down")
        .until(|| (statuses(&out) == [("firing".into(), "Polled".into())]).then_some(()))
        .await;
    assert_eq!(receiver_up(&forwarder.metrics), Some(0.0));
    let server_up = format!(
        "tidb_host_agent_forward_part_up{{part=\"alertmanager:{}\"}}",
        pair.a.url
    );
    assert_eq!(metric(&forwarder.metrics, &server_up), Some(1.0));

    drop(taken);
    Wait::new(LIMIT, "the receiver to listen once its address is free")
        .until(|| (receiver_up(&forwarder.metrics) == Some(1.0)).then_some(()))
        .await;
    let answer = reqwest::Client::new()
        .post(format!("http://{listen}/"))
        .json(&json!({"version": "4", "status": "firing", "receiver": "x", "alerts": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    forwarder.stop().await;
}
