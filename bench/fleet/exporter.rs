//! The fleet simulation's exporter (bench/fleet/run.sh): one process serving N hosts' TiDB
//! components, node_exporters and blackbox-style probes on loopback addresses
//! (`harness::sandbox::fleet`), until SIGINT or SIGTERM.
//!
//!   fleet-exporter --hosts N --dir DIR [--rule-file PATH]... [--icmp-exporters K]
//!
//! Before serving it writes DIR/prometheus-a.yml and DIR/prometheus-b.yml (TiUP's jobs for
//! these hosts, loading the rule files) and DIR/hosts.json (`[{"ip", "components"}]`,
//! for the agents' configs), then prints one `ready …` line.

use std::path::PathBuf;

use futures::StreamExt;
use harness::sandbox::Server;
use harness::sandbox::fleet::{self, Fleet, PairConfig};
use signal_hook::consts::{SIGINT, SIGTERM};

struct Options {
    hosts: usize,
    dir: PathBuf,
    pair: PairConfig,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        hosts: 0,
        dir: PathBuf::new(),
        pair: PairConfig {
            rule_files: Vec::new(),
            icmp_exporters: 1,
        },
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--hosts" => {
                let text = value()?;
                options.hosts = text.parse().map_err(|e| format!("--hosts {text}: {e}"))?;
            }
            "--dir" => options.dir = PathBuf::from(value()?),
            "--rule-file" => options.pair.rule_files.push(PathBuf::from(value()?)),
            "--icmp-exporters" => {
                let text = value()?;
                options.pair.icmp_exporters = text
                    .parse()
                    .map_err(|e| format!("--icmp-exporters {text}: {e}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if options.hosts == 0 || options.hosts > fleet::MAX_HOSTS {
        return Err(format!("--hosts must be 1..={}", fleet::MAX_HOSTS));
    }
    if options.dir.as_os_str().is_empty() {
        return Err("--dir is required".to_string());
    }
    Ok(options)
}

/// Every port of every host is a listener and Prometheus keeps a connection to each.
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    if let Err(e) = setrlimit(Resource::Nofile, limit) {
        eprintln!("fleet-exporter: cannot raise RLIMIT_NOFILE: {e}");
    }
}

fn write_configs(options: &Options, hosts: &[fleet::FleetHost]) -> Result<(), String> {
    let write = |name: &str, text: String| {
        let path = options.dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    for (server, name) in [
        (Server::A, "prometheus-a.yml"),
        (Server::B, "prometheus-b.yml"),
    ] {
        write(name, fleet::scrape_config(hosts, server, &options.pair))?;
    }
    let table: Vec<serde_json::Value> = hosts
        .iter()
        .map(|h| serde_json::json!({"ip": h.ip.to_string(), "components": h.components}))
        .collect();
    write("hosts.json", serde_json::Value::Array(table).to_string())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let fail = |why: String| -> ! {
        eprintln!("fleet-exporter: {why}");
        std::process::exit(1);
    };
    let options = parse_args().unwrap_or_else(|why| fail(why));
    raise_open_files_limit();
    let hosts = fleet::hosts(options.hosts);
    write_configs(&options, &hosts).unwrap_or_else(|why| fail(why));
    let mut signals = signal_hook_tokio::Signals::new([SIGINT, SIGTERM])
        .unwrap_or_else(|e| fail(format!("cannot handle signals: {e}")));
    let served = Fleet::start(&hosts).unwrap_or_else(|why| fail(why));
    println!(
        "ready {} hosts, {} listeners, A {} B {}",
        hosts.len(),
        served.listeners(),
        fleet::server_addr(Server::A),
        fleet::server_addr(Server::B)
    );
    signals.next().await;
    served.stop().await;
}
