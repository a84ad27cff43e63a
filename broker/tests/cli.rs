//! Runs the built `herald` binary: `config print`, `config check`, the run case and exit codes.

#[cfg(unix)]
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
#[cfg(unix)]
use std::process::Stdio;
use std::process::{Command, Output};
#[cfg(unix)]
use std::sync::mpsc;
#[cfg(unix)]
use std::time::Duration;

use herald::config::{Config, LogLevel};

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/herald.toml");

fn herald(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run herald")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn config_print_without_file_is_the_defaults() {
    let out = herald(&["config", "print"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = Config::from_toml_str(&stdout(&out), "stdout").unwrap();
    assert_eq!(printed, Config::default());
}

#[test]
fn config_print_applies_file_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "herald.toml",
        "[tcp]\nbind = \"127.0.0.1:7000\"\n[limits]\nmax_headers = 10\n",
    );
    let out = herald(&[
        "config",
        "print",
        "--config",
        file.to_str().unwrap(),
        "--tcp-bind",
        "127.0.0.1:7001",
        "--no-ws",
        "--log-level",
        "debug",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let mut expected = Config::default();
    expected.tcp.bind = "127.0.0.1:7001".parse().unwrap();
    expected.limits.max_headers = 10;
    expected.websocket.enabled = false;
    expected.log.level = LogLevel::Debug;
    assert_eq!(
        Config::from_toml_str(&stdout(&out), "stdout").unwrap(),
        expected
    );
}

#[test]
fn config_print_with_bad_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.toml", "[tcp]\nport = 1\n");
    let out = herald(&["config", "print", "-c", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty());
    assert!(
        stderr(&out).contains("unknown field `port`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn config_check_accepts_the_shipped_file() {
    let out = herald(&["config", "check", SHIPPED]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{SHIPPED}: ok\n"));
}

#[test]
fn config_check_rejects_unknown_key_with_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "bad.toml",
        "[stomp]\n\nheartbeat_sendms = 5000\n",
    );
    let out = herald(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).is_empty());
    let err = stderr(&out);
    assert!(err.starts_with(file.to_str().unwrap()), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("unknown field `heartbeat_sendms`"), "{err}");
}

#[test]
fn config_check_rejects_broken_rules_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.toml", "[websocket]\npaths = [\"ws\"]\n");
    let out = herald(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("websocket.paths[0]"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn config_check_missing_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let out = herald(&["config", "check", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(
        herald(&["--no-ws", "config", "print"]).status.code(),
        Some(2)
    );
    assert_eq!(herald(&["--ws-bind", "localhost"]).status.code(), Some(2));
    assert_eq!(herald(&["config", "check"]).status.code(), Some(2));
}

#[test]
fn run_with_invalid_overrides_exits_2() {
    let out = herald(&["--no-ws", "--no-tcp"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("websocket.enabled"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_with_address_in_use_exits_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = herald(&["--no-ws", "--tcp-bind", &addr, "--log-level", "error"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("cannot bind tcp listener"),
        "{}",
        stdout(&out)
    );
}

/// Starts the server on free ports, waits for both `listening` lines, checks that the bound
/// addresses accept TCP connections, then stops it with SIGTERM.
#[cfg(unix)]
#[test]
fn run_listens_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["--ws-bind", "127.0.0.1:0", "--tcp-bind", "127.0.0.1:0"])
        .args(["--log-level", "info"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn herald");
    let pid = child.id().to_string();

    // Lines arrive on a channel so a hung server fails the test instead of hanging it.
    let (lines_tx, lines) = mpsc::channel();
    let reader = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let next_line = || {
        lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|e| {
                signal(&pid, "-KILL");
                panic!("no log line from herald: {e}")
            })
    };

    let mut log = Vec::new();
    let mut bound = Vec::new();
    while bound.len() < 2 {
        let line = next_line();
        if line.contains("listening") {
            bound.push(bound_addr(&line));
        }
        log.push(line);
    }
    let starting = concat!("herald ", env!("CARGO_PKG_VERSION"), " starting");
    assert!(log[0].contains(starting), "{log:?}");
    for addr in &bound {
        assert_ne!(addr.port(), 0, "{log:?}");
        std::net::TcpStream::connect(addr).expect("listener accepts connections");
    }

    signal(&pid, "-TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{log:?}");
    let stopping = next_line();
    assert!(
        stopping.contains("stop signal received") && stopping.contains("SIGTERM"),
        "{stopping}"
    );
}

#[cfg(unix)]
fn signal(pid: &str, which: &str) {
    let status = Command::new("kill").args([which, pid]).status().unwrap();
    assert!(status.success(), "kill {which} {pid}");
}

/// Parses `addr=127.0.0.1:PORT` out of a `listening` log line.
#[cfg(unix)]
fn bound_addr(line: &str) -> std::net::SocketAddr {
    let start = line.find("addr=").expect("addr field") + "addr=".len();
    let end = line[start..].find(' ').map_or(line.len(), |n| start + n);
    line[start..end].parse().expect("socket address")
}
