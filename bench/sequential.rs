//! The seed approach as a baseline for `bench/run.sh`: the same queries as one agent cycle,
//! sent one after another the way the old cron script did (liveness, the two role queries,
//! then each rule), timed one by one.
//!
//! ```text
//! sequential --server URL --explain FILE [--runs N] [--every SECONDS] [--at-once]
//! ```
//! FILE is the output of `tidb-host-agent explain` for the benchmarked host: its header
//! gives the host matcher, and each block the exact PromQL the agent sends. Every run
//! prints one JSON line: total wall time, the number of requests, the slowest request and
//! the failed ones. The HTTP client keeps its connection alive between requests, which
//! favours the baseline over a script that opened one per query.
//!
//! `--at-once` sends every request of a run at the same time instead, each rule alone on
//! a connection kept from the run before: the fastest a client that asks rule by rule can
//! have the answers, with all the parallelism Prometheus can give and no work of its own
//! (bench/REPORT.md, "Cycle time and the sequential baseline").

use std::time::{Duration, Instant};

/// The agent's per-query timeout (`[prometheus] timeout` default).
const TIMEOUT: Duration = Duration::from_secs(5);

/// One request of a sequential run.
#[derive(Debug, Clone, PartialEq)]
enum Request {
    /// `GET /-/ready`, the agent's liveness probe.
    Ready,
    /// `POST /api/v1/query`.
    Query { name: String, promql: String },
}

impl Request {
    fn name(&self) -> &str {
        match self {
            Request::Ready => "liveness",
            Request::Query { name, .. } => name,
        }
    }
}

struct Args {
    server: String,
    explain: String,
    runs: u32,
    every: Duration,
    at_once: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut server = None;
    let mut explain = None;
    let mut runs = 10;
    let mut every = Duration::ZERO;
    let mut at_once = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--server" => server = Some(value("--server")?),
            "--explain" => explain = Some(value("--explain")?),
            "--runs" => {
                let v = value("--runs")?;
                runs = v.parse().map_err(|e| format!("--runs {v}: {e}"))?;
            }
            "--every" => {
                let v = value("--every")?;
                let seconds: f64 = v.parse().map_err(|e| format!("--every {v}: {e}"))?;
                every = Duration::try_from_secs_f64(seconds)
                    .map_err(|e| format!("--every {v}: {e}"))?;
            }
            "--at-once" => at_once = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        server: server.ok_or("--server is required")?,
        explain: explain.ok_or("--explain is required")?,
        runs,
        every,
        at_once,
    })
}

/// The requests of one run, from `explain` output: liveness, the role queries built on the
/// host matcher, then every rule that has a query (the computed key has none).
fn requests_from_explain(text: &str) -> Result<Vec<Request>, String> {
    let matcher = text
        .lines()
        .find_map(|l| l.strip_prefix("# host matcher: "))
        .ok_or("no `# host matcher:` line: is this `tidb-host-agent explain` output?")?;
    let mut requests = vec![
        Request::Ready,
        Request::Query {
            name: "role:group".into(),
            promql: format!("count by (group) (probe_success{{{matcher}}})"),
        },
        Request::Query {
            name: "role:job".into(),
            promql: format!("count by (job) (up{{{matcher}}})"),
        },
    ];
    let mut key = None;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if !line.starts_with([' ', '#']) && !line.is_empty() {
            key = Some(line.to_string());
        }
        let Some(first) = line.strip_prefix("  query:     ") else {
            continue;
        };
        if first.starts_with("none:") {
            continue;
        }
        // A long query continues on lines indented under its first one.
        let mut promql = first.to_string();
        while let Some(more) = lines.next_if(|l| l.starts_with("             ")) {
            promql.push('\n');
            promql.push_str(more.trim_start());
        }
        let name = key.clone().ok_or("a query before any key")?;
        requests.push(Request::Query { name, promql });
    }
    if requests.len() == 3 {
        return Err("no rule queries found".into());
    }
    Ok(requests)
}

/// Sends one request; `Err` says why it did not succeed.
async fn send(http: &reqwest::Client, server: &str, request: &Request) -> Result<(), String> {
    let response = match request {
        Request::Ready => http.get(format!("{server}/-/ready")).send().await,
        Request::Query { promql, .. } => {
            let timeout = format!("{}ms", TIMEOUT.as_millis());
            http.post(format!("{server}/api/v1/query"))
                .form(&[("query", promql.as_str()), ("timeout", timeout.as_str())])
                .send()
                .await
        }
    }
    .map_err(|e| e.to_string())?;
    let status = response.status();
    // The whole body is read, as the script and the agent do.
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    if matches!(request, Request::Query { .. }) && !body.starts_with(br#"{"status":"success""#) {
        return Err("not a successful API answer".into());
    }
    Ok(())
}

/// Sends one request and times it: its name, how long it took, and how it went.
async fn timed<'a>(
    http: &reqwest::Client,
    server: &str,
    request: &'a Request,
) -> (&'a str, Duration, Result<(), String>) {
    let sent = Instant::now();
    let result = send(http, server, request).await;
    (request.name(), sent.elapsed(), result)
}

async fn run(args: Args) -> Result<(), String> {
    let text = std::fs::read_to_string(&args.explain)
        .map_err(|e| format!("cannot read {}: {e}", args.explain))?;
    let requests = requests_from_explain(&text)?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let server = args.server.trim_end_matches('/');
    for run in 1..=args.runs {
        let started = Instant::now();
        let answers = if args.at_once {
            futures::future::join_all(requests.iter().map(|r| timed(&http, server, r))).await
        } else {
            let mut answers = Vec::with_capacity(requests.len());
            for request in &requests {
                answers.push(timed(&http, server, request).await);
            }
            answers
        };
        let total = started.elapsed();
        let mut slowest = (Duration::ZERO, "");
        let mut failed = Vec::new();
        for (name, took, result) in answers {
            if let Err(why) = result {
                failed.push(format!("{name}: {why}"));
            }
            if took > slowest.0 {
                slowest = (took, name);
            }
        }
        println!(
            "{}",
            serde_json::json!({
                "run": run,
                "requests": requests.len(),
                "total_seconds": total.as_secs_f64(),
                "slowest_seconds": slowest.0.as_secs_f64(),
                "slowest": slowest.1,
                "failed": failed,
            })
        );
        if run < args.runs {
            tokio::time::sleep(args.every.saturating_sub(total)).await;
        }
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let result = match parse_args() {
        Ok(args) => run(args).await,
        Err(why) => Err(format!(
            "{why}\nusage: sequential --server URL --explain FILE [--runs N] [--every SECONDS] \
             [--at-once]"
        )),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("sequential: {why}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPLAIN: &str = r#"# host matcher: instance=~"(?:10\\.0\\.1\\.5)(?::[0-9]+)?"
# 3 rules.

TiDB.pd.PD_server_is_down
  component: pd
  query:     probe_success{group="pd",instance=~"(?:10\\.0\\.1\\.5)(?::[0-9]+)?"} == 0

TiDB.prometheus.Prometheus_is_down
  component: prometheus
  query:     none: the daemon probes every Prometheus server (SPEC §6)

TiDB.cluster.Long
  component: cluster
  query:     sum(a)
             > 0
"#;

    #[test]
    fn requests_follow_the_old_script_order() {
        let requests = requests_from_explain(EXPLAIN).unwrap();
        let names: Vec<&str> = requests.iter().map(Request::name).collect();
        assert_eq!(
            names,
            [
                "liveness",
                "role:group",
                "role:job",
                "TiDB.pd.PD_server_is_down",
                "TiDB.cluster.Long"
            ]
        );
        assert_eq!(
            requests[1],
            Request::Query {
                name: "role:group".into(),
                promql: r#"count by (group) (probe_success{instance=~"(?:10\\.0\\.1\\.5)(?::[0-9]+)?"})"#
                    .into()
            }
        );
        assert_eq!(
            requests[4],
            Request::Query {
                name: "TiDB.cluster.Long".into(),
                promql: "sum(a)\n> 0".into()
            }
        );
    }

    #[test]
    fn other_text_is_refused() {
        assert!(requests_from_explain("hello").is_err());
        assert!(requests_from_explain("# host matcher: x\n").is_err());
    }
}
