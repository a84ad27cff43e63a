//! What a worker tells its parent, one line per report on stdout:
//! `KIND key=value key=value ... [err=free text to the end of the line]`.
//! The parent writes `stop` to a worker's stdin to end it early.

use std::collections::HashMap;

/// Sent once every connection of the worker has subscribed or failed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ready {
    pub ok: usize,
    pub failed: usize,
    /// From the worker's first connect to its last RECEIPT.
    pub elapsed_us: u64,
    /// Per-connection setup time (connect to RECEIPT), as a [`crate::hist`] line.
    pub setup: String,
    pub err: Option<String>,
}

/// Sent once, as the worker finishes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Finished {
    /// MESSAGE frames received over all connections.
    pub received: u64,
    /// Unix nanoseconds of the first and last MESSAGE (0 when none).
    pub first_ns: u64,
    pub last_ns: u64,
    /// Connections that received every expected message.
    pub complete: usize,
    /// Connections the broker closed (or that failed) before the worker stopped them.
    pub closed_early: usize,
    /// ERROR frames received.
    pub error_frames: usize,
    /// End-to-end latency, as a [`crate::hist`] line.
    pub latency: String,
    /// With `--rounds`: per message number, the latest arrival over the worker's connections
    /// (microseconds after the send; 0 = none arrived), comma-separated; `-` otherwise.
    pub rounds: String,
    pub err: Option<String>,
}

impl Ready {
    pub const KIND: &'static str = "ready";

    pub fn to_line(&self) -> String {
        format_line(
            Self::KIND,
            &[
                ("ok", self.ok.to_string()),
                ("failed", self.failed.to_string()),
                ("elapsed_us", self.elapsed_us.to_string()),
                ("setup", self.setup.clone()),
            ],
            self.err.as_deref(),
        )
    }

    pub fn from_line(line: &str) -> Result<Ready, String> {
        let mut f = Fields::parse(Self::KIND, line)?;
        Ok(Ready {
            ok: f.number("ok")?,
            failed: f.number("failed")?,
            elapsed_us: f.number("elapsed_us")?,
            setup: f.text("setup")?,
            err: f.err.take(),
        })
    }
}

impl Finished {
    pub const KIND: &'static str = "finished";

    pub fn to_line(&self) -> String {
        format_line(
            Self::KIND,
            &[
                ("received", self.received.to_string()),
                ("first_ns", self.first_ns.to_string()),
                ("last_ns", self.last_ns.to_string()),
                ("complete", self.complete.to_string()),
                ("closed_early", self.closed_early.to_string()),
                ("error_frames", self.error_frames.to_string()),
                ("latency", self.latency.clone()),
                ("rounds", self.rounds.clone()),
            ],
            self.err.as_deref(),
        )
    }

    pub fn from_line(line: &str) -> Result<Finished, String> {
        let mut f = Fields::parse(Self::KIND, line)?;
        Ok(Finished {
            received: f.number("received")?,
            first_ns: f.number("first_ns")?,
            last_ns: f.number("last_ns")?,
            complete: f.number("complete")?,
            closed_early: f.number("closed_early")?,
            error_frames: f.number("error_frames")?,
            latency: f.text("latency")?,
            rounds: f.text("rounds")?,
            err: f.err.take(),
        })
    }
}

/// Formats per-round latest arrivals for [`Finished::rounds`].
pub fn rounds_to_field(rounds: &[u64]) -> String {
    if rounds.is_empty() {
        return "-".to_owned();
    }
    let texts: Vec<String> = rounds.iter().map(u64::to_string).collect();
    texts.join(",")
}

/// Reads a [`Finished::rounds`] field back.
pub fn rounds_from_field(field: &str) -> Result<Vec<u64>, String> {
    if field == "-" {
        return Ok(Vec::new());
    }
    field
        .split(',')
        .map(|n| n.parse().map_err(|_| format!("bad rounds entry {n:?}")))
        .collect()
}

/// The kind word of a line, if it has one.
pub fn kind(line: &str) -> &str {
    line.split_whitespace().next().unwrap_or("")
}

fn format_line(kind: &str, fields: &[(&str, String)], err: Option<&str>) -> String {
    let mut line = kind.to_owned();
    for (key, value) in fields {
        debug_assert!(!value.contains(char::is_whitespace));
        line.push(' ');
        line.push_str(key);
        line.push('=');
        line.push_str(value);
    }
    if let Some(err) = err {
        line.push_str(" err=");
        // One line per report: fold any line breaks in the error text.
        line.extend(
            err.chars()
                .map(|c| if c == '\n' || c == '\r' { ' ' } else { c }),
        );
    }
    line
}

struct Fields {
    values: HashMap<String, String>,
    err: Option<String>,
}

impl Fields {
    fn parse(kind: &str, line: &str) -> Result<Fields, String> {
        let line = line.trim_end();
        let rest = line
            .strip_prefix(kind)
            .filter(|r| r.is_empty() || r.starts_with(' '))
            .ok_or_else(|| format!("expected a {kind} line, got {line:?}"))?;
        let (rest, err) = match rest.find(" err=") {
            Some(i) => (&rest[..i], Some(rest[i + 5..].to_owned())),
            None => (rest, None),
        };
        let mut values = HashMap::new();
        for token in rest.split_whitespace() {
            let (key, value) = token
                .split_once('=')
                .ok_or_else(|| format!("bad field {token:?} in {line:?}"))?;
            values.insert(key.to_owned(), value.to_owned());
        }
        Ok(Fields { values, err })
    }

    fn text(&mut self, key: &str) -> Result<String, String> {
        self.values
            .remove(key)
            .ok_or_else(|| format!("missing field {key}"))
    }

    fn number<T: std::str::FromStr>(&mut self, key: &str) -> Result<T, String> {
        let text = self.text(key)?;
        text.parse()
            .map_err(|_| format!("field {key} is not a number: {text:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_round_trips_with_an_error_text() {
        let ready = Ready {
            ok: 9998,
            failed: 2,
            elapsed_us: 4_100_000,
            setup: "120:5,900:3".to_owned(),
            err: Some("connect 127.0.0.1:1: Connection refused (os error 111)\nagain".to_owned()),
        };
        let line = ready.to_line();
        assert!(!line.contains('\n'));
        assert_eq!(kind(&line), "ready");
        let back = Ready::from_line(&line).unwrap();
        assert_eq!(
            back.err.as_deref(),
            Some("connect 127.0.0.1:1: Connection refused (os error 111) again")
        );
        assert_eq!(
            back,
            Ready {
                err: back.err.clone(),
                ..ready
            }
        );
    }

    #[test]
    fn finished_round_trips() {
        let finished = Finished {
            received: 20_000_000,
            first_ns: 1,
            last_ns: 2,
            complete: 1000,
            closed_early: 0,
            error_frames: 0,
            latency: "-".to_owned(),
            rounds: "1200,0,950".to_owned(),
            err: None,
        };
        assert_eq!(Finished::from_line(&finished.to_line()).unwrap(), finished);
    }

    #[test]
    fn rounds_fields_round_trip() {
        assert_eq!(rounds_to_field(&[]), "-");
        assert_eq!(rounds_from_field("-").unwrap(), Vec::<u64>::new());
        assert_eq!(
            rounds_from_field(&rounds_to_field(&[5, 0, 7])).unwrap(),
            vec![5, 0, 7]
        );
        assert!(rounds_from_field("5,x").is_err());
    }

    #[test]
    fn wrong_kind_and_missing_fields_are_errors() {
        assert!(Finished::from_line("ready ok=1").is_err());
        assert!(Ready::from_line("readyx ok=1").is_err());
        assert!(Ready::from_line("ready ok=1 failed=0").is_err());
        assert!(Ready::from_line("ready ok=x failed=0 elapsed_us=1 setup=-").is_err());
    }
}
