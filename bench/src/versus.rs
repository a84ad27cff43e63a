//! `--vs URL`: the same scenario against two brokers in alternation (A B A B ...), each run a
//! child process of this tool writing its figures as JSON, then each pair's ratios. On a noisy
//! shared machine only figures measured side by side compare.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Map, Value, json};

use crate::cli::Common;
use crate::plot::median;
use crate::report::round3;

/// Flags that name the broker or the output; each run gets its own instead.
const PER_RUN_FLAGS: &[&str] = &[
    "--url",
    "--login",
    "--passcode",
    "--host",
    "--label",
    "--json",
    "--vs",
    "--vs-login",
    "--vs-passcode",
    "--vs-host",
    "--vs-label",
    "--vs-pairs",
    "--vs-broker-pid",
];

/// The figures a scenario is judged by, and whether more is better.
fn headline(scenario: &str) -> &'static [(&'static str, bool)] {
    match scenario {
        "conns" => &[
            ("broker_bytes_per_connection", false),
            ("connect_rate_per_s", true),
        ],
        "fanout" => &[("deliveries_per_s", true), ("latency_p99_ms", false)],
        "broadcast" => &[
            ("last_arrival_p50_ms", false),
            ("last_arrival_max_ms", false),
        ],
        "pubsub" | "queue" => &[("messages_per_s", true), ("latency_p99_ms", false)],
        _ => &[],
    }
}

/// One side of the comparison.
struct Side {
    name: &'static str,
    label: String,
    /// The scenario and its flags, with this side's `--broker-pid`.
    scenario_args: Vec<String>,
    broker_args: Vec<String>,
}

/// Runs the pairs and prints the ratios; `Ok(true)` only if every run was clean.
pub fn run(common: &Common) -> Result<bool, String> {
    let versus = &common.versus;
    let b_url = versus.vs_url.clone().ok_or("--vs needs a URL")?;
    let exe = std::env::current_exe().map_err(|e| format!("finding own executable: {e}"))?;
    let (a_args, b_args) = scenario_args(std::env::args().skip(1), versus.vs_broker_pid);
    let sides = [
        Side {
            name: "A",
            label: common.label.clone().unwrap_or_else(|| common.url.clone()),
            scenario_args: a_args,
            broker_args: broker_args(&common.url, &common.login, &common.passcode, &common.host),
        },
        Side {
            name: "B",
            label: versus.vs_label.clone().unwrap_or_else(|| b_url.clone()),
            scenario_args: b_args,
            broker_args: broker_args(
                &b_url,
                &versus.vs_login,
                &versus.vs_passcode,
                &versus.vs_host,
            ),
        },
    ];
    let scratch = std::env::temp_dir().join(format!("herald-load-vs-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)
        .map_err(|e| format!("creating {}: {e}", scratch.display()))?;
    let mut runs: Vec<Value> = Vec::new();
    let mut all_clean = true;
    let mut scenario = String::new();
    for pair in 1..=versus.vs_pairs {
        for side in &sides {
            let tag = format!("{}{pair}", side.name);
            let json_path = scratch.join(format!("{tag}.json"));
            println!("== run {tag}: {} ==", side.label);
            // A run that measured nothing (its broker refused every connection, say) is
            // recorded as failed; the comparison goes on with the other runs.
            let (clean, mut figures) = match run_child(&exe, side, &json_path, &tag)
                .and_then(|clean| Ok((clean, read_figures(&json_path)?)))
            {
                Ok(result) => result,
                Err(e) => {
                    eprintln!("herald-load: {e}");
                    (false, Map::new())
                }
            };
            all_clean &= clean;
            figures.insert("run".to_owned(), json!(tag));
            figures.insert("clean".to_owned(), json!(clean));
            if let Some(Value::String(s)) = figures.get("scenario") {
                scenario.clone_from(s);
            }
            runs.push(Value::Object(figures));
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let ratios = print_ratios(&scenario, &runs, &sides);
    if let Some(path) = &common.json {
        let combined = json!({
            "scenario": scenario,
            "a": sides[0].label,
            "b": sides[1].label,
            "runs": runs,
            "ratios_a_over_b": ratios,
        });
        let text = serde_json::to_string_pretty(&combined).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(all_clean)
}

/// The scenario's arguments for A and for B: without the per-run flags, and for B with
/// `--vs-broker-pid` as its `--broker-pid` (never A's).
fn scenario_args(
    args: impl Iterator<Item = String>,
    vs_broker_pid: Option<u32>,
) -> (Vec<String>, Vec<String>) {
    let a = without_flags(args, PER_RUN_FLAGS);
    let mut b = without_flags(a.iter().cloned(), &["--broker-pid"]);
    if let Some(pid) = vs_broker_pid {
        b.extend(["--broker-pid".to_owned(), pid.to_string()]);
    }
    (a, b)
}

/// `args` without `flags` and their values (`--flag value` or `--flag=value`).
fn without_flags(args: impl Iterator<Item = String>, flags: &[&str]) -> Vec<String> {
    let mut kept = Vec::new();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let name = arg.split_once('=').map_or(arg.as_str(), |(name, _)| name);
        if flags.contains(&name) {
            if !arg.contains('=') {
                args.next();
            }
            continue;
        }
        kept.push(arg);
    }
    kept
}

fn broker_args(
    url: &str,
    login: &Option<String>,
    passcode: &Option<String>,
    host: &Option<String>,
) -> Vec<String> {
    let mut args = vec!["--url".to_owned(), url.to_owned()];
    for (flag, value) in [
        ("--login", login),
        ("--passcode", passcode),
        ("--host", host),
    ] {
        if let Some(value) = value {
            args.push(flag.to_owned());
            args.push(value.clone());
        }
    }
    args
}

/// Runs one scenario in a child process, its output prefixed with `tag`; `Ok(true)` when it
/// exited 0, `Ok(false)` for 1 (ran, short of clean), `Err` otherwise.
fn run_child(exe: &Path, side: &Side, json_path: &PathBuf, tag: &str) -> Result<bool, String> {
    let mut child = Command::new(exe)
        .args(&side.scenario_args)
        .args(&side.broker_args)
        .arg("--label")
        .arg(&side.label)
        .arg("--json")
        .arg(json_path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting run {tag}: {e}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    for line in BufReader::new(stdout).lines() {
        match line {
            Ok(line) => println!("[{tag}] {line}"),
            Err(_) => break,
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for run {tag}: {e}"))?;
    match status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(format!("run {tag} failed ({status})")),
    }
}

fn read_figures(path: &Path) -> Result<Map<String, Value>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    match serde_json::from_str(&text) {
        Ok(Value::Object(figures)) => Ok(figures),
        Ok(_) => Err(format!("{}: not a JSON object", path.display())),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Prints a table of each pair's headline figures and A/B ratios, then the median ratio per
/// figure; returns the ratios per figure.
fn print_ratios(scenario: &str, runs: &[Value], sides: &[Side; 2]) -> Map<String, Value> {
    let mut out = Map::new();
    println!(
        "== A = {}, B = {}; ratio = A/B ==",
        sides[0].label, sides[1].label
    );
    for &(key, more_is_better) in headline(scenario) {
        let mut ratios = Vec::new();
        for (i, pair) in runs.chunks(2).enumerate() {
            let value = |run: &Value| run.get(key).and_then(Value::as_f64);
            let (Some(a), Some(b)) = (value(&pair[0]), pair.get(1).and_then(value)) else {
                println!("pair {}: {key}: missing", i + 1);
                continue;
            };
            let ratio = a / b;
            ratios.push(ratio);
            println!(
                "pair {}: {key}: A {a:.3}, B {b:.3}, A/B {ratio:.2}{}",
                i + 1,
                if more_is_better {
                    ""
                } else {
                    " (less is better)"
                }
            );
        }
        if let Some(median) = median(&ratios) {
            println!(
                "{key}: median A/B over {} pair(s) = {median:.2}",
                ratios.len()
            );
            out.insert(
                key.to_owned(),
                json!({"per_pair": ratios.iter().map(|r| round3(*r)).collect::<Vec<_>>(),
                       "median": round3(median), "more_is_better": more_is_better}),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_run_flags_are_dropped_with_their_values() {
        let args = [
            "--vs",
            "ws://b/ws",
            "fanout",
            "--url=ws://a/ws",
            "--subscribers",
            "10",
            "--vs-login",
            "guest",
            "--json",
            "out.json",
            "--workers",
            "2",
            "--broker-pid",
            "5",
            "--vs-broker-pid=7",
        ]
        .map(String::from);
        let (a, b) = scenario_args(args.clone().into_iter(), Some(7));
        assert_eq!(
            a,
            [
                "fanout",
                "--subscribers",
                "10",
                "--workers",
                "2",
                "--broker-pid",
                "5"
            ]
        );
        assert_eq!(
            b,
            [
                "fanout",
                "--subscribers",
                "10",
                "--workers",
                "2",
                "--broker-pid",
                "7"
            ]
        );
        let (_, b) = scenario_args(args.into_iter(), None);
        assert_eq!(b, ["fanout", "--subscribers", "10", "--workers", "2"]);
    }

    #[test]
    fn every_scenario_has_headline_figures() {
        for scenario in ["conns", "fanout", "broadcast", "pubsub", "queue"] {
            assert!(!headline(scenario).is_empty(), "{scenario}");
        }
    }
}
