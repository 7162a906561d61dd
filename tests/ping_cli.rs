//! `tidb-host-agent ping` (SPEC §7): output lines, `--json`, the record, and exit codes
//! 0 (all answered), 1 (some did not) and 2 (bad arguments, unresolvable names, no ICMP
//! permission). Only loopback, and namespaces the tests create, are pinged.

// A failing test panics; that is how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use harness::privilege::{as_nobody, in_new_netns, skip_unless_root};
use regex::Regex;
use tidb_host_agent::ping::prober::NO_PERMISSION_MESSAGE;
use tidb_host_agent::ping::record::RecordLine;

const AGENT: &str = env!("CARGO_BIN_EXE_tidb-host-agent");

fn ping(args: &[&str]) -> Output {
    Command::new(AGENT)
        .arg("ping")
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parses one line; returns (target, sent, received, loss, min/avg/max, over).
fn parse_line(line: &str) -> (String, u32, u32, String, Option<[f64; 3]>, u32) {
    let re = Regex::new(
        r"^(\S+(?: \(\S+\))?) +: xmt/rcv/%loss = (\d+)/(\d+)/([\d.]+)%(?:, min/avg/max = ([\d.]+)/([\d.]+)/([\d.]+) ms)?, over \S+ = (\d+)$",
    )
    .unwrap();
    let c = re
        .captures(line)
        .unwrap_or_else(|| panic!("not an fping-like line: {line:?}"));
    let number = |i: usize| c.get(i).map(|m| m.as_str().parse::<f64>().unwrap());
    let summary = number(5).map(|min| [min, number(6).unwrap(), number(7).unwrap()]);
    (
        c[1].to_string(),
        c[2].parse().unwrap(),
        c[3].parse().unwrap(),
        c[4].to_string(),
        summary,
        c[8].parse().unwrap(),
    )
}

#[test]
fn all_answered_prints_one_line_per_target_and_exits_0() {
    let out = ping(&[
        "-c",
        "3",
        "-i",
        "10ms",
        "127.0.0.1",
        "127.0.0.2",
        "127.0.0.3",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<_> = stdout.lines().map(parse_line).collect();
    let targets: Vec<&str> = lines.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(targets, ["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
    for (target, sent, received, loss, summary, over) in &lines {
        assert_eq!(
            (*sent, *received, loss.as_str(), *over),
            (3, 3, "0", 0),
            "{target}"
        );
        let [min, avg, max] = summary.expect("answered targets show min/avg/max");
        assert!(min <= avg && avg <= max, "{target}: {min}/{avg}/{max}");
    }
    assert!(
        stdout.contains("over 1s = 0"),
        "the default threshold: {stdout}"
    );
}

#[test]
fn json_carries_the_same_figures_and_every_echo() {
    let out = ping(&["-c", "4", "-i", "5ms", "--json", "127.0.0.1", "127.0.0.9"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(json["threshold_ms"], 1000.0);
    let targets = json["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    for t in targets {
        assert_eq!(t["sent"], 4);
        assert_eq!(t["received"], 4);
        assert_eq!(t["loss_percent"], 0.0);
        assert_eq!(t["over_threshold"], 0);
        let echoes = t["echoes"].as_array().unwrap();
        let seqs: Vec<u64> = echoes.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, [0, 1, 2, 3]);
        let rtts: Vec<f64> = echoes
            .iter()
            .map(|e| e["rtt_ms"].as_f64().unwrap())
            .collect();
        let min = rtts.iter().copied().fold(f64::INFINITY, f64::min);
        let max = rtts.iter().copied().fold(0.0, f64::max);
        assert_eq!(t["min_ms"].as_f64(), Some(min));
        assert_eq!(t["max_ms"].as_f64(), Some(max));
        let avg = t["avg_ms"].as_f64().unwrap();
        assert!(min <= avg && avg <= max);
    }
    assert_eq!(targets[1]["target"], "127.0.0.9");
}

#[test]
fn a_threshold_below_loopback_rtt_counts_and_records_every_echo() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("slow.jsonl");
    let out = ping(&[
        "-c",
        "5",
        "-i",
        "5ms",
        "-T",
        "1us",
        "--record",
        record.to_str().unwrap(),
        "127.0.0.1",
        "127.0.0.2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for line in text(&out.stdout).lines() {
        let (target, _, received, _, _, over) = parse_line(line);
        assert_eq!((received, over), (5, 5), "{target}: every echo is over 1us");
        assert!(line.contains("over 1us = 5"), "{line}");
    }
    let lines: Vec<RecordLine> = std::fs::read_to_string(&record)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 10);
    assert!(lines.iter().all(|l| l.rtt_ms.is_some_and(|ms| ms > 0.001)));
    assert!(lines.iter().all(|l| l.threshold_ms == 0.001));
}

#[test]
fn targets_come_from_a_file_too() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("targets");
    std::fs::write(&file, "# loopback\n127.0.0.4\n\n127.0.0.5  # fifth\n").unwrap();
    let out = ping(&["-c", "1", "-f", file.to_str().unwrap(), "127.0.0.3"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let targets: Vec<String> = text(&out.stdout).lines().map(|l| parse_line(l).0).collect();
    assert_eq!(targets, ["127.0.0.3", "127.0.0.4", "127.0.0.5"]);
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    for (args, says) in [
        (&["-c", "0", "127.0.0.1"][..], "-c"),
        (&["-t", "0", "127.0.0.1"], "must be longer than 0s"),
        (&["-i", "5 minutes", "127.0.0.1"], "invalid duration"),
        (&["-s", "70000", "127.0.0.1"], "70000"),
        (&[], "no targets"),
        (
            &["-f", "/nonexistent/targets"],
            "cannot read targets from /nonexistent/targets",
        ),
    ] {
        let out = ping(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: no report");
    }
}

#[test]
fn an_unresolvable_name_exits_2_before_any_echo() {
    if skip_unless_root("ping_cli unresolvable name") {
        return;
    }
    // In a namespace with no route out, the lookup fails without leaving the host.
    let out = in_new_netns(
        &["ip link set lo up"],
        "",
        AGENT,
        &["ping", "-c", "1", "127.0.0.1", "no-such-host.invalid"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "tidb-host-agent ping: cannot resolve ping target `no-such-host.invalid`: "
        ),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing was pinged");
}

#[test]
fn a_silent_target_exits_1_and_shows_full_loss() {
    if skip_unless_root("ping_cli silent target") {
        return;
    }
    // 198.18.0.2 sits behind a veth end with no address: echoes leave and vanish.
    let out = in_new_netns(
        &[
            "ip link set lo up",
            "ip link add v0 type veth peer name v1",
            "ip addr add 198.18.0.1/30 dev v0",
            "ip link set v0 up",
            "ip link set v1 up",
            "ip neigh add 198.18.0.2 lladdr 02:00:00:00:00:02 dev v0",
        ],
        "",
        AGENT,
        &[
            "ping",
            "-c",
            "3",
            "-i",
            "10ms",
            "-t",
            "200ms",
            "127.0.0.1",
            "198.18.0.2",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let lines: Vec<_> = text(&out.stdout).lines().map(parse_line).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].0, "127.0.0.1");
    assert_eq!((lines[0].1, lines[0].2), (3, 3));
    assert_eq!(lines[1].0, "198.18.0.2");
    assert_eq!((lines[1].1, lines[1].2, lines[1].3.as_str()), (3, 0, "100"));
    assert_eq!(lines[1].4, None, "no min/avg/max without a reply");
}

#[test]
fn without_icmp_permission_the_error_is_exact_and_the_exit_is_2() {
    if skip_unless_root("ping_cli without permission") {
        return;
    }
    let out = as_nobody("1 0", AGENT, &["ping", "-c", "1", "127.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!("tidb-host-agent ping: {NO_PERMISSION_MESSAGE}\n")
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn an_unprivileged_user_in_ping_group_range_can_ping() {
    if skip_unless_root("ping_cli datagram sockets") {
        return;
    }
    let out = as_nobody(
        "0 2147483647",
        AGENT,
        &["ping", "-c", "2", "-i", "5ms", "127.0.0.1"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (_, sent, received, ..) = parse_line(text(&out.stdout).trim_end());
    assert_eq!((sent, received), (2, 2));
}
