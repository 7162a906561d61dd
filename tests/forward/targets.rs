//! Forward targets fed by a real Alertmanager pair: an exec target that fails before it
//! succeeds, hostile label values that must stay data, and an HTTP target.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use harness::alertmanager::{AlertmanagerPair, alert, routing_to_nothing};
use harness::block::Block;
use harness::process::process_gone;
use harness::recorder::{calls, fixture, hang_pids, statuses};
use harness::wait::{LIMIT, QUIET, Wait};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tidb_host_agent::config::{self, ForwardConfig, HttpForward};

use crate::forwarder::{Forwarder, exec_target, forward_config, metric, recording_target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_target_failing_three_times_gets_the_event_once_it_succeeds() {
    let block = Block::take();
    let pair = AlertmanagerPair::start(&block, &routing_to_nothing()).await;
    let state = tempfile::tempdir().unwrap();
    let (flaky_state, out, steady_out) = (
        state.path().join("flaky"),
        state.path().join("out"),
        state.path().join("steady"),
    );
    std::fs::create_dir_all(&flaky_state).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let flaky = exec_target(
        "flaky",
        &[
            "/bin/sh",
            &fixture("fail_then_record.sh"),
            &flaky_state.display().to_string(),
            "3",
            &out.display().to_string(),
            "{{ status }}",
            "{{ alertname }}",
        ],
    );
    let config = forward_config(
        &pair.urls(),
        vec![flaky, recording_target("steady", &steady_out)],
    );
    let forwarder = Forwarder::start(config, state.path());

    pair.post_both(&json!([alert("TiDB_server_is_down", &[])]))
        .await;
    Wait::new(LIMIT, "the delivery after three failures")
        .until(|| (!calls(&out).is_empty()).then_some(()))
        .await;
    tokio::time::sleep(QUIET).await;
    let attempts: u32 = std::fs::read_to_string(flaky_state.join("attempts"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        attempts, 4,
        "three failures, one success, no attempt after it"
    );
    assert_eq!(
        statuses(&out),
        [("firing".into(), "TiDB_server_is_down".into())]
    );
    // The other target was not held up or repeated by the flaky one.
    assert_eq!(
        statuses(&steady_out),
        [("firing".into(), "TiDB_server_is_down".into())]
    );
    let encoded = forwarder.metrics.encode();
    let count = |target: &str, result: &str| {
        metric(
            &forwarder.metrics,
            &format!(
                "tidb_host_agent_forward_deliveries_total{{target=\"{target}\",result=\"{result}\"}}"
            ),
        )
    };
    assert_eq!(count("flaky", "error"), Some(3.0), "{encoded}");
    assert_eq!(count("flaky", "ok"), Some(1.0), "{encoded}");
    assert_eq!(count("steady", "ok"), Some(1.0), "{encoded}");
    forwarder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_label_values_reach_the_exec_target_as_data() {
    let block = Block::take();
    let pair = AlertmanagerPair::start(&block, &routing_to_nothing()).await;
    let state = tempfile::tempdir().unwrap();
    let out = state.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let marker = format!(
        "/tmp/pwned-forward-{}-{}",
        std::process::id(),
        block.number()
    );
    let markers = [
        marker.clone(),
        format!("{marker}-semicolon"),
        format!("{marker}-backtick"),
        format!("{marker}-newline"),
        format!("{marker}-huge"),
    ];
    let huge: String = std::iter::repeat_n("0123456789abcdef", 100 * 1024 / 16).collect::<String>()
        + &format!("$(touch {})", markers[4]);
    let hostile: BTreeMap<&str, String> = BTreeMap::from([
        ("subst", format!("$(touch {})", markers[0])),
        ("semi", format!("x; touch {} ;", markers[1])),
        ("tick", format!("`touch {}`", markers[2])),
        (
            "newline",
            format!("line one\nline two\n; touch {}\n", markers[3]),
        ),
        ("huge", huge.clone()),
    ]);
    assert!(hostile["huge"].len() > 100 * 1024);

    let mut argv: Vec<String> = vec![
        "/bin/sh".into(),
        fixture("record.sh"),
        out.display().to_string(),
    ];
    argv.extend(hostile.keys().map(|k| format!("{{{{ labels.{k} }}}}")));
    argv.push("{{ labels.subst }} and {{ labels.tick }}".into());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let config = forward_config(&pair.urls(), vec![exec_target("hostile", &argv)]);
    let forwarder = Forwarder::start(config, state.path());

    let labels: Vec<(&str, &str)> = hostile.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut evil = alert("Evil", &labels);
    evil["annotations"]["summary"] = json!(hostile["newline"]);
    pair.post_both(&json!([evil])).await;
    Wait::new(LIMIT, "the hostile alert")
        .until(|| (!calls(&out).is_empty()).then_some(()))
        .await;

    let call = calls(&out).remove(0);
    for (i, (name, value)) in hostile.iter().enumerate() {
        assert_eq!(
            call.args[i],
            value.as_bytes(),
            "argv element {i} (label {name}) differs from the label value"
        );
    }
    assert_eq!(
        call.args[hostile.len()],
        format!("{} and {}", hostile["subst"], hostile["tick"]).as_bytes()
    );
    let event = call.event();
    for (name, value) in &hostile {
        assert_eq!(event["labels"][name], json!(value), "stdin label {name}");
    }
    assert_eq!(call.stdin.last(), Some(&b'\n'));
    assert_eq!(call.env_var("ALERT_SUMMARY"), hostile["newline"].as_bytes());
    assert_eq!(call.env_var("ALERT_NAME"), b"Evil");
    assert_eq!(call.env_var("ALERT_STATUS"), b"firing");
    assert_eq!(call.env_var("ALERT_SEVERITY"), b"critical");
    forwarder.stop().await;
    for marker in &markers {
        assert!(
            !std::path::Path::new(marker).exists(),
            "{marker} exists: a label value was executed"
        );
    }
}

/// Requests an in-process HTTP server received: method, path, headers, body.
type Received = Arc<Mutex<Vec<(String, String, BTreeMap<String, String>, String)>>>;

/// Serves on `listener`; answers 503 to the first request and 200 afterwards.
async fn serve_recording(listener: tokio::net::TcpListener, received: Received) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let received = Arc::clone(&received);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let received = Arc::clone(&received);
                async move {
                    let method = request.method().to_string();
                    let path = request.uri().to_string();
                    let headers = request
                        .headers()
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.to_string(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect();
                    let body = request.into_body().collect().await.unwrap().to_bytes();
                    let mut all = received.lock().unwrap();
                    all.push((
                        method,
                        path,
                        headers,
                        String::from_utf8_lossy(&body).into_owned(),
                    ));
                    let status = if all.len() == 1 {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    };
                    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
                    *response.status_mut() = status;
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_target_gets_the_templated_body_and_headers() {
    let block = Block::take();
    let pair = AlertmanagerPair::start(&block, &routing_to_nothing()).await;
    let state = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind((block.ip(4), 0))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let received: Received = Arc::default();
    let server = tokio::spawn(serve_recording(listener, Arc::clone(&received)));

    let templated = HttpForward {
        name: Some("chat".into()),
        url: format!("http://{addr}/hook/{{{{ labels.level }}}}"),
        method: "PUT".into(),
        headers: BTreeMap::from([
            ("X-Alert".into(), "{{ alertname }} {{ status }}".into()),
            ("Content-Type".into(), "application/json".into()),
        ]),
        body: Some(r#"{"text": {{ ("[" ~ status ~ "] " ~ alertname ~ ": " ~ summary) | tojson }}, "instance": {{ labels.instance | tojson }}}"#.into()),
        timeout: config::Duration::from_secs(5),
    };
    let plain = HttpForward {
        name: Some("webhook".into()),
        url: format!("http://{addr}/default"),
        method: "POST".into(),
        headers: BTreeMap::new(),
        body: None,
        ..templated.clone()
    };
    let forwarder = Forwarder::start(
        forward_config(
            &pair.urls(),
            vec![ForwardConfig::Http(templated), ForwardConfig::Http(plain)],
        ),
        state.path(),
    );
    pair.post_both(&json!([alert(
        "PD_server_is_down",
        &[("instance", "10.0.1.2:2379 \"quoted\"")]
    )]))
    .await;

    // One 503 (retried) and one success per target.
    Wait::new(LIMIT, "both targets to succeed")
        .until(|| {
            let all = received.lock().unwrap();
            let chat = all.iter().filter(|r| r.1.starts_with("/hook")).count();
            let default = all.iter().filter(|r| r.1 == "/default").count();
            (all.len() == 3 && chat >= 1 && default >= 1).then_some(())
        })
        .await;
    tokio::time::sleep(QUIET).await;
    let all = received.lock().unwrap().clone();
    assert_eq!(
        all.len(),
        3,
        "the first answer (503) is retried, 2xx ones are not: {all:?}"
    );

    let chat = all.iter().rfind(|r| r.1.starts_with("/hook")).unwrap();
    assert_eq!(chat.0, "PUT");
    assert_eq!(chat.1, "/hook/critical");
    assert_eq!(chat.2["x-alert"], "PD_server_is_down firing");
    assert_eq!(chat.2["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_str(&chat.3).unwrap();
    assert_eq!(
        body,
        json!({"text": "[firing] PD_server_is_down: PD_server_is_down is happening",
               "instance": "10.0.1.2:2379 \"quoted\""})
    );

    let default = all.iter().rfind(|r| r.1 == "/default").unwrap();
    assert_eq!(default.0, "POST");
    assert_eq!(default.2["content-type"], "application/json");
    let event: serde_json::Value = serde_json::from_str(&default.3).unwrap();
    assert_eq!(event["status"], "firing");
    assert_eq!(event["labels"]["alertname"], "PD_server_is_down");
    assert_eq!(event["labels"]["instance"], "10.0.1.2:2379 \"quoted\"");
    assert!(event["fingerprint"].is_string());
    forwarder.stop().await;
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_exec_target_is_killed_at_its_timeout_and_retried() {
    let block = Block::take();
    let pair = AlertmanagerPair::start(&block, &routing_to_nothing()).await;
    let state = tempfile::tempdir().unwrap();
    let hang_dir = state.path().join("hang");
    std::fs::create_dir_all(&hang_dir).unwrap();
    let ForwardConfig::Exec(mut hanging) = exec_target(
        "hanging",
        &[
            "/bin/sh",
            &fixture("hang.sh"),
            &hang_dir.display().to_string(),
        ],
    ) else {
        unreachable!("exec_target builds an exec target")
    };
    hanging.timeout = config::Duration::from_millis(300);
    let out = state.path().join("out");
    let config = forward_config(
        &pair.urls(),
        vec![
            ForwardConfig::Exec(hanging),
            recording_target("steady", &out),
        ],
    );
    let forwarder = Forwarder::start(config, state.path());
    pair.post_both(&json!([alert("TiFlash_down", &[])])).await;

    let pids = Wait::new(LIMIT, "three attempts of the hanging target")
        .until(|| {
            let pids = hang_pids(&hang_dir);
            (pids.len() >= 3).then_some(pids)
        })
        .await;
    // Every attempt but the one in flight was killed at the timeout.
    for pid in &pids[..pids.len() - 1] {
        Wait::new(LIMIT, &format!("attempt {pid} to be killed"))
            .until(|| process_gone(*pid).then_some(()))
            .await;
    }
    assert_eq!(
        statuses(&out),
        [("firing".into(), "TiFlash_down".into())],
        "the other target is not held up"
    );
    forwarder.stop().await;
    for pid in hang_pids(&hang_dir) {
        Wait::new(LIMIT, &format!("attempt {pid} to be killed at shutdown"))
            .until(|| process_gone(pid).then_some(()))
            .await;
    }
    let spooled = std::fs::read_dir(state.path().join("spool"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".event"))
        .count();
    assert_eq!(spooled, 1, "the undelivered event stays spooled");
}
