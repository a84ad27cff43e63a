//! The case model, selection (profile, `--only`, what the options allow) and the run loop.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::ctx::Ctx;
use crate::report::{Outcome, Report, Status};
use crate::wire::{Target, Transport};
use crate::{Options, Profile};

/// What a case concludes when it does not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// The case found it cannot judge this broker (e.g. the broker offers no heart-beats).
    Skip(String),
}

/// A case's result: `Err` is a failure with its reason.
pub type CaseResult = Result<Verdict, String>;
pub type CaseFuture = Pin<Box<dyn Future<Output = CaseResult> + Send>>;

/// Where a case runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Once per `--url`.
    AnyTransport,
    /// Once per WebSocket `--url`.
    WsOnly,
}

/// A broker feature or an option a case depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Queues,
    Acks,
    Transactions,
    UserDestinations,
    Authentication,
    /// At least this many `--user` entries.
    Users(usize),
}

/// Features Herald does not have yet, and the issue that brings each.
const HERALD_MISSING: &[(Need, &str)] = &[];

/// Herald deviations from semantics.md that the project has yet to decide on: under
/// `--profile herald` these runs are skipped with the reason (never passed). Keyed by run name.
const HERALD_KNOWN_ISSUES: &[(&str, &str)] = &[];

/// One conformance case.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub tags: &'static [&'static str],
    pub needs: &'static [Need],
    pub scope: Scope,
    pub run: fn(Ctx) -> CaseFuture,
}

impl Case {
    pub fn new(
        name: &'static str,
        tags: &'static [&'static str],
        run: fn(Ctx) -> CaseFuture,
    ) -> Case {
        Case {
            name,
            tags,
            needs: &[],
            scope: Scope::AnyTransport,
            run,
        }
    }

    pub fn needs(mut self, needs: &'static [Need]) -> Case {
        self.needs = needs;
        self
    }

    pub fn ws_only(mut self) -> Case {
        self.scope = Scope::WsOnly;
        self
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.contains(&tag)
    }

    /// Why this case is not run with these options, if it is not.
    fn skip_reason(&self, run_name: &str, options: &Options) -> Option<String> {
        if options.profile == Profile::Generic && self.has_tag("herald") {
            return Some("Herald-specific behaviour (runs with --profile herald)".into());
        }
        if options.profile == Profile::Herald {
            let missing = HERALD_MISSING
                .iter()
                .find(|(need, _)| self.needs.contains(need));
            if let Some((_, issue)) = missing {
                return Some(format!("skipped (issue: {issue})"));
            }
            let known = HERALD_KNOWN_ISSUES
                .iter()
                .find(|(name, _)| *name == run_name);
            if let Some((_, reason)) = known {
                return Some((*reason).to_owned());
            }
        }
        for need in self.needs {
            if let Need::Users(n) = need {
                if available_users(options) < *n {
                    return Some(format!(
                        "needs {n} --user NAME:PASSWORD (or --login/--passcode for one)"
                    ));
                }
            }
        }
        None
    }
}

/// Users the cases can log in as: every `--user`, or else `--login`/`--passcode`.
pub fn available_users(options: &Options) -> usize {
    if !options.users.is_empty() {
        options.users.len()
    } else if options.login.is_some() && options.passcode.is_some() {
        1
    } else {
        0
    }
}

/// Builds a [`Case`]: `case!(name, [tags], async_fn)`.
#[macro_export]
macro_rules! case {
    ($name:expr, [$($tag:expr),* $(,)?], $f:path) => {
        $crate::runner::Case::new($name, &[$($tag),*], |ctx| Box::pin($f(ctx)))
    };
}

/// Longest time one case may take before it counts as failed.
const CASE_LIMIT: Duration = Duration::from_secs(90);

/// Runs the suite as the options say; `Ok(true)` when nothing failed.
pub fn main(options: Options) -> Result<bool, String> {
    let cases = crate::cases::all();
    check_unique(&cases)?;
    if options.list {
        let mut out = std::io::stdout().lock();
        for case in cases.iter().filter(|c| selected(c, None, &options)) {
            let scope = match case.scope {
                Scope::AnyTransport => "",
                Scope::WsOnly => " (ws only)",
            };
            // A closed pipe (`| head`) ends the listing quietly.
            if writeln!(out, "{}  [{}]{scope}", case.name, case.tags.join(", ")).is_err() {
                break;
            }
        }
        return Ok(true);
    }
    if options.urls.is_empty() {
        return Err("give at least one --url (tcp://HOST:PORT or ws://HOST:PORT/PATH)".into());
    }
    let targets = options
        .urls
        .iter()
        .map(|u| Target::parse(u))
        .collect::<Result<Vec<_>, _>>()?;
    let peers = options
        .peer_urls
        .iter()
        .map(|u| Target::parse(u))
        .collect::<Result<Vec<_>, _>>()?;
    for user in &options.users {
        if !user.contains(':') {
            return Err(format!("--user {user}: expected NAME:PASSWORD"));
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let report = runtime.block_on(run_all(options.clone(), cases, targets, peers));
    if let Some(path) = &options.json {
        report.write_json(path)?;
    }
    Ok(report.failed() == 0)
}

fn check_unique(cases: &[Case]) -> Result<(), String> {
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    match names.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(format!("two cases are named {}", w[0])),
        None => Ok(()),
    }
}

/// The name a case runs under on one target: `name [ws]`, `name [tcp#2]` for a second
/// address of the same transport.
fn run_name(case: &Case, targets: &[Target], index: usize) -> String {
    let transport = targets[index].transport;
    let nth = targets[..=index]
        .iter()
        .filter(|t| t.transport == transport)
        .count();
    if nth == 1 {
        format!("{} [{}]", case.name, transport.label())
    } else {
        format!("{} [{}#{nth}]", case.name, transport.label())
    }
}

fn selected(case: &Case, run_name: Option<&str>, options: &Options) -> bool {
    options.only.is_empty()
        || options.only.iter().any(|s| {
            run_name.unwrap_or(case.name).contains(s.as_str()) || case.tags.iter().any(|t| t == s)
        })
}

async fn run_all(
    options: Options,
    cases: Vec<Case>,
    targets: Vec<Target>,
    peers: Vec<Target>,
) -> Report {
    let options = Arc::new(options);
    let run_id = run_id();
    let mut report = Report::new();
    for (number, case) in cases.iter().enumerate() {
        for (index, target) in targets.iter().enumerate() {
            if case.scope == Scope::WsOnly && target.transport != Transport::Ws {
                continue;
            }
            let name = run_name(case, &targets, index);
            if !selected(case, Some(&name), &options) {
                continue;
            }
            let started = tokio::time::Instant::now();
            let (status, reason) = match case.skip_reason(&name, &options) {
                Some(reason) => (Status::Skip, reason),
                None => {
                    let prefix = format!(
                        "hc{run_id}-{number}{}{index}",
                        &target.transport.label()[..1]
                    );
                    let peer = peer_of(target, &peers);
                    let ctx = Ctx::new(Arc::clone(&options), target.clone(), peer, prefix);
                    run_one(case, ctx).await
                }
            };
            report.record(Outcome {
                name,
                case: case.name,
                transport: target.transport.label(),
                tags: case.tags,
                status,
                reason,
                millis: started.elapsed().as_millis(),
            });
        }
    }
    report.finish();
    report
}

/// The node `cluster.*` cases pair with `target`: the first `--peer-url` of its transport,
/// else the first `--peer-url`, else `target` itself.
fn peer_of(target: &Target, peers: &[Target]) -> Target {
    peers
        .iter()
        .find(|p| p.transport == target.transport)
        .or_else(|| peers.first())
        .unwrap_or(target)
        .clone()
}

async fn run_one(case: &Case, ctx: Ctx) -> (Status, String) {
    let mut handle = tokio::spawn((case.run)(ctx));
    match tokio::time::timeout(CASE_LIMIT, &mut handle).await {
        Err(_) => {
            handle.abort();
            (
                Status::Fail,
                format!("the case did not finish within {} s", CASE_LIMIT.as_secs()),
            )
        }
        Ok(Err(join)) => (Status::Fail, format!("the case panicked: {join}")),
        Ok(Ok(Ok(Verdict::Pass))) => (Status::Pass, String::new()),
        Ok(Ok(Ok(Verdict::Skip(reason)))) => (Status::Skip, reason),
        Ok(Ok(Err(reason))) => (Status::Fail, reason),
    }
}

/// Six hex digits that differ between runs, so destinations never collide with a previous
/// run's leftovers (RabbitMQ keeps `/queue/` queues).
fn run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    format!("{:06x}", hasher.finish() & 0xff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(urls: &[&str]) -> Vec<Target> {
        urls.iter().map(|u| Target::parse(u).unwrap()).collect()
    }

    #[test]
    fn peer_is_the_target_without_peer_urls() {
        let ws = &targets(&["ws://127.0.0.1:1/ws"])[0];
        assert_eq!(peer_of(ws, &[]), *ws);
    }

    #[test]
    fn peer_of_the_same_transport_first() {
        let peers = targets(&["ws://127.0.0.1:3/ws", "tcp://127.0.0.1:4"]);
        let [ws, tcp] =
            <[Target; 2]>::try_from(targets(&["ws://127.0.0.1:1/ws", "tcp://127.0.0.1:2"]))
                .unwrap();
        assert_eq!(peer_of(&ws, &peers), peers[0]);
        assert_eq!(peer_of(&tcp, &peers), peers[1]);
    }

    #[test]
    fn else_the_first_peer() {
        let peers = targets(&["ws://127.0.0.1:3/ws"]);
        let tcp = &targets(&["tcp://127.0.0.1:2"])[0];
        assert_eq!(peer_of(tcp, &peers), peers[0]);
    }
}
