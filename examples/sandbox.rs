//! The test sandbox as a standalone program, for the demo and for poking at by hand:
//! `cargo run --example sandbox [-- --victoria-metrics] [--upstream-rules] [--block N]`.
//!
//! It starts the sandbox of the end-to-end tests on block 0 (exactly 127.0.1.1, 127.0.1.2
//! and 127.0.1.10), prints one `ready …` line with the server URLs, then runs until killed
//! (SIGINT, SIGTERM) or told to `quit`. Each line on stdin is a command and gets exactly one
//! line back, starting with `ok` or `error:`. Type `help` for the list.

use std::net::SocketAddr;

use futures::StreamExt;
use harness::sandbox::{DEMO_BLOCK, Host, Sandbox, SandboxOptions, Server, ServerKind};
use signal_hook::consts::{SIGINT, SIGTERM};
use tokio::sync::mpsc;

const HELP: &str = "commands: \
stop|start|restart COMPONENT ADDR (pd, tidb, tikv, tiflash, node_exporter, grafana; ADDR = any of its ports) | \
stop|start blackbox_exporter HOST_IP | \
stop|start|pause|resume prometheus a|b | \
set ADDR SELECTOR VALUE | add ADDR SELECTOR DELTA | rate ADDR SELECTOR PER_SECOND | \
histogram ADDR SELECTOR SECONDS | view a|b ADDR SELECTOR VALUE | clear-views ADDR | \
query a|b PROMQL | ready | status | quit";

fn parse_args() -> Result<SandboxOptions, String> {
    let mut options = SandboxOptions {
        block: Some(DEMO_BLOCK),
        ..SandboxOptions::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--victoria-metrics" => options.server_b = ServerKind::VictoriaMetrics,
            "--upstream-rules" => options.upstream_rules = true,
            "--block" => {
                let value = args.next().ok_or("--block needs a number")?;
                let block = value.parse().map_err(|e| format!("--block {value}: {e}"))?;
                options.block = Some(block);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|e| format!("{text:?} is not an IP:port address: {e}"))
}

fn parse_number(text: &str) -> Result<f64, String> {
    text.parse()
        .map_err(|e| format!("{text:?} is not a number: {e}"))
}

fn parse_server(text: &str) -> Result<Server, String> {
    Server::parse(text).ok_or_else(|| format!("{text:?} is not a server (a or b)"))
}

/// `line` without its first `n` words.
fn after_words(line: &str, n: usize) -> &str {
    let mut rest = line.trim_start();
    for _ in 0..n {
        rest = rest
            .find(char::is_whitespace)
            .map_or("", |i| rest[i..].trim_start());
    }
    rest.trim_end()
}

/// Runs one command line; the text after `ok`, or why it failed.
async fn run(sb: &Sandbox, line: &str) -> Result<String, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let fake = |addr: &str| {
        let addr = parse_addr(addr)?;
        sb.find_fake(addr)
            .ok_or_else(|| format!("no fake component listens on {addr}"))
    };
    match words.as_slice() {
        [] => Ok(String::new()),
        ["help"] => Ok(HELP.to_string()),
        ["quit"] => Ok("bye".to_string()),
        ["ready"] => {
            sb.wait_until_ready().await;
            Ok("every running server has scraped every target".to_string())
        }
        ["status"] => {
            let servers: Vec<String> = Server::ALL
                .iter()
                .map(|s| {
                    let server = sb.server(*s);
                    let state = if server.is_running() { "up" } else { "down" };
                    format!("{:?}={} {state}", s, server.url())
                })
                .collect();
            let stopped: Vec<String> = sb
                .fakes()
                .iter()
                .filter(|f| !f.is_running())
                .map(|f| format!("{} {}", f.component().name(), f.addr()))
                .collect();
            Ok(format!(
                "{}; stopped fakes: [{}]",
                servers.join(" "),
                stopped.join(", ")
            ))
        }
        [
            verb @ ("stop" | "start" | "pause" | "resume"),
            "prometheus",
            which,
        ] => {
            let server = sb.server(parse_server(which)?);
            match *verb {
                "stop" => server.stop().await,
                "start" => server.start().await,
                "pause" => server.pause(),
                _ => server.resume(),
            }
            Ok(format!("{verb} prometheus {which}"))
        }
        [verb @ ("stop" | "start"), "blackbox_exporter", ip] => {
            let blackbox = Host::ALL
                .iter()
                .map(|h| sb.blackbox(*h))
                .find(|b| b.addr().ip().to_string() == *ip || b.addr().to_string() == *ip)
                .ok_or_else(|| format!("no blackbox_exporter on {ip}"))?;
            if *verb == "stop" {
                blackbox.stop().await;
            } else {
                blackbox.start().await;
            }
            Ok(format!("{verb} blackbox_exporter {}", blackbox.addr()))
        }
        [verb @ ("stop" | "start" | "restart"), component, addr] => {
            let fake = fake(addr)?;
            if fake.component().name() != *component {
                return Err(format!(
                    "{addr} is a {}, not a {component}",
                    fake.component().name()
                ));
            }
            match *verb {
                "stop" => fake.stop().await,
                "start" => fake.start().await,
                _ => fake.restart().await,
            }
            Ok(format!("{verb} {component} {}", fake.addr()))
        }
        [
            verb @ ("set" | "add" | "rate" | "histogram"),
            addr,
            selector,
            number,
        ] => {
            let fake = fake(addr)?;
            let number = parse_number(number)?;
            let matched = fake.check_selector(selector, *verb == "histogram")?;
            match *verb {
                "set" => fake.set(selector, number),
                "add" => fake.add(selector, number),
                "rate" => fake.set_rate(selector, number),
                _ => fake.set_histogram(selector, number),
            }
            Ok(format!("{verb} {selector} on {matched} series of {addr}"))
        }
        ["view", which, addr, selector, value] => {
            let server = parse_server(which)?;
            let fake = fake(addr)?;
            let value = parse_number(value)?;
            let matched = fake.check_selector(selector, false)?;
            fake.set_for_view(server, selector, value);
            Ok(format!(
                "server {server:?} sees {selector} = {value} on {matched} series"
            ))
        }
        ["clear-views", addr] => {
            fake(addr)?.clear_views();
            Ok(format!("views cleared on {addr}"))
        }
        ["query", which, ..] => {
            let server = sb.server(parse_server(which)?);
            let promql = after_words(line, 2);
            let samples = server.try_query(promql).await?;
            let shown: Vec<String> = samples
                .iter()
                .map(|s| {
                    let labels: Vec<String> =
                        s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                    format!("{{{}}} {}", labels.join(","), s.value)
                })
                .collect();
            Ok(format!("{} samples: {}", samples.len(), shown.join(" ")))
        }
        _ => Err(format!("unknown command {line:?}; {HELP}")),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let options = match parse_args() {
        Ok(options) => options,
        Err(why) => {
            eprintln!("sandbox: {why}\nusage: sandbox [--victoria-metrics] [--block N]");
            std::process::exit(2);
        }
    };
    let mut signals = match signal_hook_tokio::Signals::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("sandbox: cannot handle signals: {e}");
            std::process::exit(1);
        }
    };
    let sb = Sandbox::start_with(options).await;
    sb.wait_until_ready().await;
    println!(
        "ready block={} prometheus_a={} prometheus_b={} server_b={:?} dir={}",
        sb.block(),
        sb.server(Server::A).url(),
        sb.server(Server::B).url(),
        sb.server(Server::B).kind(),
        sb.dir().display()
    );

    // tokio's stdin needs a feature this crate does not enable; a thread is enough here.
    let (lines_tx, mut lines) = mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if lines_tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let mut stdin_open = true;
    loop {
        tokio::select! {
            _ = signals.next() => break,
            line = lines.recv(), if stdin_open => match line {
                // Without stdin (run in the background) the sandbox runs until killed.
                None => stdin_open = false,
                Some(line) => {
                    let line = line.trim();
                    match run(&sb, line).await {
                        Ok(text) if line == "quit" => {
                            println!("ok {text}");
                            break;
                        }
                        Ok(text) => println!("ok {text}"),
                        Err(why) => println!("error: {why}"),
                    }
                }
            },
        }
    }
    // Dropping the sandbox stops every process and removes its files.
    drop(sb);
}
