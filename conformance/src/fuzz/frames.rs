//! Frame generation: valid client frames with random headers, ids and bodies, and hostile
//! ones (nasty `content-length`, broken escapes, invalid UTF-8, NUL, CR/LF, huge lines).
//!
//! Destinations come from a small fixed set shared by every connection of the run, so
//! publishers and subscribers meet and the broker's queues and routes stay bounded over a long
//! run (an unbounded set would measure queue-count growth, not leaks).

use herald_protocol::Version;

use super::rng::Rng;

/// Literal destinations publishers and subscribers share.
pub const TOPICS: &[&str] = &[
    "/topic/fz0",
    "/topic/fz1",
    "/topic/fz/a/x",
    "/topic/fz/b/x",
    "/topic/fz.c.x",
];
pub const QUEUES: &[&str] = &["/queue/fz0", "/queue/fz1"];
/// Subscription patterns over the topics above, all valid.
pub const PATTERNS: &[&str] = &[
    "/topic/fz*",
    "/topic/fz/*/x",
    "/topic/fz/**",
    "/topic/fz/?/x",
    "/topic/fz/{a}/x",
    "/topic/fz/{a:[ab]}/x",
    "/topic/**",
    "/topic/fz/#",
    "/topic/fz.*.x",
];
const ODD_DESTINATIONS: &[&str] = &[
    "/user/queue/fz0",
    "/user/anonymous/queue/fz0",
    "/user/alice/queue/fz0",
    "/user/",
    "/user/queue/",
    "/user//queue/fz0",
    "/queue/fz0-user1",
    "/topic/",
    "/queue/",
    "",
    "/",
    "/exchange/fz",
    "/temp-queue/fz",
    "/topic/fz/{",
    "/topic/fz/{a:(}",
    "/topic/fz/**/**",
    "/topic/fz#",
    "topic/fz0",
    "/topic/fz0/",
    "/topic//fz0",
];
/// Bytes that break parsers: NUL, line ends, escapes, separators, lone UTF-8 pieces (a lead
/// byte, a continuation byte, a surrogate, an overlong form) and whole multi-byte characters.
pub const TOKENS: &[&[u8]] = &[
    b"\0",
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b":",
    b"\\",
    b"\\n",
    b"\\c",
    b"\\r",
    b"\\\\",
    b"\\t",
    b"\xc6",
    b"\x88",
    b"\xc6\x88",
    b"\xff",
    b"\xed\xa0\x80",
    b"\xc0\x80",
    b"\xe2\x82",
    "é".as_bytes(),
    "😀".as_bytes(),
    b"content-length:",
    b"\0ERROR\nmessage:forged\n\n\0",
    b"\0MESSAGE\nsubscription:s0\nmessage-id:forged\ndestination:/topic/fz0\n\n\0",
    b"\0RECEIPT\nreceipt-id:forged\n\n\0",
];
const NASTY_LENGTHS: &[&str] = &[
    "99999999999999999999999",
    "4294967296",
    "18446744073709551616",
    "-1",
    "-0",
    "+5",
    " 5",
    "5 ",
    "0x10",
    "abc",
    "",
    "1e3",
    "4194305",
    "2147483647",
];
const ACK_MODES: &[&str] = &["auto", "client", "client-individual", "AUTO", "bogus", ""];
const HEART_BEATS: &[&str] = &["0,0", "0,0", "0,0", "1000,1000", "0,500", "10000,0"];
const BAD_HEART_BEATS: &[&str] = &["abc", "-1,5", "99999999999,0", "1,", ",", "0;0"];
const VERSIONS: &[&str] = &[
    "1.2",
    "1.0,1.1,1.2",
    "1.1,1.2",
    "1.1",
    "1.0",
    "2.0,1.2",
    "9.9",
];

/// A frame the broker should relay unchanged: its body and its `fz-*` headers as published.
#[derive(Debug, Clone)]
pub struct Registered {
    pub id: String,
    pub body: Vec<u8>,
    /// `fz-*` headers with their unescaped values, when the publisher spoke 1.2.
    pub headers: Option<Vec<(String, String)>>,
}

/// One generated piece of a connection's byte stream.
#[derive(Debug, Clone)]
pub struct Piece {
    pub bytes: Vec<u8>,
    /// Set for a well-formed SEND whose delivery a subscriber can check.
    pub registered: Option<Registered>,
    /// False when the piece may leave the broker's parser out of step with frame boundaries.
    pub clean: bool,
}

impl Piece {
    /// A piece that may leave the broker out of step with frame boundaries.
    pub fn dirty(bytes: Vec<u8>) -> Piece {
        Piece {
            bytes,
            registered: None,
            clean: false,
        }
    }
}

/// How `content-length` is written.
#[derive(Debug, Clone)]
enum Length {
    Correct,
    Absent,
    Raw(Vec<u8>),
}

/// A frame written byte for byte; names and values are raw (escapes are the caller's).
#[derive(Debug, Clone)]
pub struct RawFrame {
    command: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    body: Vec<u8>,
    length: Length,
    eol: &'static [u8],
}

impl RawFrame {
    pub fn new(command: &str) -> RawFrame {
        RawFrame {
            command: command.as_bytes().to_vec(),
            headers: Vec::new(),
            body: Vec::new(),
            length: Length::Correct,
            eol: b"\n",
        }
    }

    pub fn h(mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> RawFrame {
        self.headers
            .push((name.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> RawFrame {
        self.body = body;
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 128);
        out.extend_from_slice(&self.command);
        out.extend_from_slice(self.eol);
        for (name, value) in &self.headers {
            out.extend_from_slice(name);
            out.push(b':');
            out.extend_from_slice(value);
            out.extend_from_slice(self.eol);
        }
        let length = match &self.length {
            Length::Correct if !self.body.is_empty() => Some(self.body.len().to_string().into()),
            Length::Correct | Length::Absent => None,
            Length::Raw(raw) => Some(raw.clone()),
        };
        if let Some(length) = length {
            out.extend_from_slice(b"content-length:");
            out.extend_from_slice(&length);
            out.extend_from_slice(self.eol);
        }
        out.extend_from_slice(self.eol);
        out.extend_from_slice(&self.body);
        out.push(0);
        out
    }
}

/// STOMP 1.2 header escaping.
pub fn escape_12(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            ':' => out.push_str("\\c"),
            c => out.push(c),
        }
    }
    out
}

/// What a connection has opened so far, so later frames can refer to it.
#[derive(Debug, Clone)]
pub struct Session {
    /// `i<iteration>c<connection>`: makes registered ids unique in the run.
    tag: String,
    /// The CONNECT was well-formed and settled on 1.2 (escapes can be checked end to end).
    pub speaks_12: bool,
    /// Only frames the broker should accept: fresh ids, known transactions, shared
    /// destinations (so the session lives long enough for its SENDs to be checked).
    pub polite: bool,
    subscriptions: Vec<String>,
    transactions: Vec<String>,
    sent: usize,
}

impl Session {
    pub fn new(tag: String) -> Session {
        Session {
            tag,
            speaks_12: false,
            polite: false,
            subscriptions: Vec::new(),
            transactions: Vec::new(),
            sent: 0,
        }
    }
}

/// A literal destination publishers and subscribers share.
pub fn shared_destination(rng: &mut Rng) -> &'static str {
    if rng.percent(70) {
        rng.pick(TOPICS)
    } else {
        rng.pick(QUEUES)
    }
}

/// Any destination: shared literals mostly, patterns, user destinations, odd ones, rarely a
/// header line longer than the broker's limit.
fn destination(rng: &mut Rng) -> Vec<u8> {
    match rng.below(20) {
        0..=10 => shared_destination(rng).into(),
        11..=13 => rng.pick(PATTERNS).as_bytes().to_vec(),
        14..=17 => rng.pick(ODD_DESTINATIONS).as_bytes().to_vec(),
        18 => {
            let mut d = b"/topic/fz".to_vec();
            d.extend(std::iter::repeat_n(b'x', rng.between(100, 9000)));
            d
        }
        _ => nasty_value(rng),
    }
}

/// Printable text of a random length, with multi-byte characters now and then.
fn text(rng: &mut Rng, max: usize) -> String {
    const CHARS: &[&str] = &[
        "a", "b", "z", "0", "9", "-", "_", ".", "/", " ", "é", "ƈ", "😀",
    ];
    (0..rng.below(max + 1)).map(|_| rng.pick(CHARS)).collect()
}

/// A header value with at least one hostile token in it.
fn nasty_value(rng: &mut Rng) -> Vec<u8> {
    let mut value = text(rng, 8).into_bytes();
    for _ in 0..rng.between(1, 3) {
        let at = rng.below(value.len() + 1);
        let token = rng.pick(TOKENS);
        value.splice(at..at, token.iter().copied());
    }
    value
}

/// A body: often empty or short text, sometimes binary with NULs, rarely large.
pub fn body(rng: &mut Rng) -> Vec<u8> {
    match rng.below(20) {
        0..=4 => Vec::new(),
        5..=13 => text(rng, 40).into_bytes(),
        14..=17 => (0..rng.below(300)).map(|_| rng.byte()).collect(),
        18 => vec![b'b'; rng.between(1000, 64 * 1024)],
        _ => vec![0; rng.between(1, 64)],
    }
}

/// A valid CONNECT or STOMP frame, and whether it settles on 1.2.
pub fn connect(rng: &mut Rng) -> (Vec<u8>, bool) {
    let versions = rng.pick(VERSIONS);
    let command = if versions != "1.0" && rng.percent(20) {
        "STOMP"
    } else {
        "CONNECT"
    };
    let mut frame = RawFrame::new(command)
        .h("accept-version", versions)
        .h("host", if rng.percent(80) { "/" } else { "fz-host" })
        .h("heart-beat", rng.pick(HEART_BEATS));
    if rng.percent(3) {
        // A login nobody configured: refused after the broker's failure delay.
        frame = frame.h("login", "fz-nobody").h("passcode", "wrong");
    }
    if rng.percent(20) {
        frame = frame.h(format!("fz-{}", rng.below(100)), text(rng, 10));
    }
    let speaks_12 = negotiated(versions) == Some(Version::V1_2);
    (frame.bytes(), speaks_12)
}

/// A CONNECT that is wrong in one way.
pub fn bad_connect(rng: &mut Rng) -> Vec<u8> {
    let frame = match rng.below(8) {
        0 => RawFrame::new("CONNECT")
            .h("accept-version", "1.2")
            .h("heart-beat", rng.pick(BAD_HEART_BEATS)),
        1 => RawFrame::new("CONNECT")
            .h("accept-version", "1.2")
            .h(nasty_value(rng), "x"),
        2 => RawFrame::new("CONNECT")
            .h("accept-version", "1.2")
            .h("host", nasty_value(rng)),
        3 => RawFrame::new("CONNECT")
            .h("accept-version", "1.2")
            .h("x", "y")
            .body(body(rng)),
        4 => RawFrame::new("connect").h("accept-version", "1.2"),
        5 => RawFrame::new("SEND").h("destination", shared_destination(rng)),
        6 => RawFrame::new("CONNECT")
            .h("accept-version", "1.2")
            .h("login", nasty_value(rng))
            .h("passcode", "x"),
        _ => RawFrame::new("CONNECT").h("accept-version", rng.pick(&["", "0.9", "1.2,,", "1.3"])),
    };
    frame.bytes()
}

/// A well-formed frame of any client command, referring to ids this session opened.
pub fn valid_frame(rng: &mut Rng, session: &mut Session) -> Piece {
    if session.polite {
        return polite_frame(rng, session);
    }
    let bytes = match rng.below(100) {
        0..=44 => return send(rng, session),
        45..=59 => subscribe(rng, session),
        60..=66 => {
            let id = existing_or_new(rng, &session.subscriptions, "s");
            RawFrame::new("UNSUBSCRIBE").h("id", id).bytes()
        }
        67..=76 => {
            let command = if rng.percent(70) { "ACK" } else { "NACK" };
            let id = match rng.below(4) {
                0 => format!("{}-{}", rng.below(20), rng.below(20)),
                1 => format!("s{}-{}", rng.below(4), rng.below(5)),
                2 => text(rng, 12),
                _ => format!("{}", rng.below(100)),
            };
            let mut frame = RawFrame::new(command).h("id", id);
            if rng.percent(30) {
                frame = frame.h(
                    "transaction",
                    existing_or_new(rng, &session.transactions, "t"),
                );
            }
            frame.bytes()
        }
        77..=84 => {
            let tx = format!("t{}", rng.below(4));
            session.transactions.push(tx.clone());
            RawFrame::new("BEGIN").h("transaction", tx).bytes()
        }
        85..=93 => {
            let command = if rng.percent(60) { "COMMIT" } else { "ABORT" };
            let tx = existing_or_new(rng, &session.transactions, "t");
            session.transactions.retain(|t| *t != tx);
            RawFrame::new(command).h("transaction", tx).bytes()
        }
        94..=96 => b"\n".repeat(rng.between(1, 3)),
        97 => RawFrame::new("DISCONNECT").h("receipt", "fz-bye").bytes(),
        98 => connect(rng).0,
        _ => {
            RawFrame::new(rng.pick(&["HELLO", "MESSAGE", "ERROR", "RECEIPT", "CONNECTED"])).bytes()
        }
    };
    Piece {
        bytes,
        registered: None,
        clean: true,
    }
}

/// A frame the broker accepts in this session's state.
fn polite_frame(rng: &mut Rng, session: &mut Session) -> Piece {
    let bytes = match rng.below(10) {
        0..=5 => return send(rng, session),
        6 => {
            let id = format!("p{}", session.sent + session.subscriptions.len());
            session.subscriptions.push(id.clone());
            let destination = if rng.percent(70) {
                shared_destination(rng)
            } else {
                rng.pick(PATTERNS)
            };
            RawFrame::new("SUBSCRIBE")
                .h("id", id)
                .h("destination", destination)
                .bytes()
        }
        7 if !session.subscriptions.is_empty() => {
            let id = session
                .subscriptions
                .swap_remove(rng.below(session.subscriptions.len()));
            RawFrame::new("UNSUBSCRIBE").h("id", id).bytes()
        }
        8 => {
            let tx = format!("pt{}", session.sent + session.transactions.len());
            session.transactions.push(tx.clone());
            RawFrame::new("BEGIN").h("transaction", tx).bytes()
        }
        9 if !session.transactions.is_empty() => {
            let tx = session
                .transactions
                .swap_remove(rng.below(session.transactions.len()));
            let command = if rng.percent(70) { "COMMIT" } else { "ABORT" };
            RawFrame::new(command).h("transaction", tx).bytes()
        }
        _ => b"\n".to_vec(),
    };
    Piece {
        bytes,
        registered: None,
        clean: true,
    }
}

fn existing_or_new(rng: &mut Rng, known: &[String], prefix: &str) -> String {
    if !known.is_empty() && rng.percent(75) {
        rng.choose(known).clone()
    } else {
        format!("{prefix}{}", rng.below(6))
    }
}

fn subscribe(rng: &mut Rng, session: &mut Session) -> Vec<u8> {
    let id = format!("s{}", rng.below(6));
    session.subscriptions.push(id.clone());
    let mut frame = RawFrame::new("SUBSCRIBE")
        .h("id", id)
        .h("destination", destination(rng));
    if rng.percent(40) {
        frame = frame.h("ack", rng.pick(ACK_MODES));
    }
    if rng.percent(15) {
        frame = frame.h("prefetch-count", rng.pick(&["1", "0", "-1", "100", "x"]));
    }
    if rng.percent(30) {
        frame = frame.h("receipt", format!("r{}", rng.below(100)));
    }
    frame.bytes()
}

/// A SEND; when it is well-formed and goes to a shared literal destination it is registered,
/// so subscribers can check its body and `fz-*` headers.
fn send(rng: &mut Rng, session: &mut Session) -> Piece {
    session.sent += 1;
    let id = format!("{}n{}", session.tag, session.sent);
    let literal = session.polite || rng.percent(80);
    let destination = if literal {
        shared_destination(rng).as_bytes().to_vec()
    } else {
        destination(rng)
    };
    let mut frame = RawFrame::new("SEND")
        .h("destination", destination)
        .h("fz-id", &id);
    let mut headers = Vec::new();
    for n in 0..rng.below(4) {
        let value = text(rng, 12)
            // `\r` is no escape on 1.1: a polite session keeps special characters to 1.2.
            + if rng.percent(40) && (session.speaks_12 || !session.polite) {
                rng.pick(&["\n", ":", "\\", "\r", "a:b\\c\n"])
            } else {
                ""
            };
        let name = format!("fz-h{n}");
        frame = frame.h(&name, escape_12(&value));
        headers.push((name, value));
    }
    if rng.percent(20) {
        frame = frame.h("receipt", format!("r{}", rng.below(100)));
    }
    if rng.percent(15) && !(session.polite && session.transactions.is_empty()) {
        frame = frame.h(
            "transaction",
            existing_or_new(rng, &session.transactions, "t"),
        );
    }
    if rng.percent(10) {
        frame = frame.h(
            "content-type",
            rng.pick(&[
                "text/plain",
                "application/octet-stream",
                "text/plain;charset=utf-8",
            ]),
        );
    }
    let body = body(rng);
    if !body.contains(&0) && rng.percent(20) {
        frame.length = Length::Absent;
    }
    let registered = Registered {
        id,
        body: body.clone(),
        headers: session.speaks_12.then_some(headers),
    };
    Piece {
        bytes: frame.body(body).bytes(),
        registered: literal.then_some(registered),
        clean: true,
    }
}

/// A frame with one hostile element: a bad `content-length`, a nasty header name or value, a
/// broken line end, a huge header count, a frame cut short, a forged frame after a NUL.
pub fn hostile_frame(rng: &mut Rng, session: &mut Session) -> Vec<u8> {
    let mut base = hostile_base(rng);
    match rng.below(12) {
        0 | 1 => {
            base.length = Length::Raw(rng.pick(NASTY_LENGTHS).as_bytes().to_vec());
            base.body(body(rng)).bytes()
        }
        2 => {
            let body = body(rng);
            let wrong = (body.len() as i64 + [-1, 1, 2, -2][rng.below(4)]).max(0);
            base.length = Length::Raw(wrong.to_string().into_bytes());
            base.body(body).bytes()
        }
        3 | 4 => base.h(nasty_value(rng), text(rng, 6)).bytes(),
        5 | 6 => base
            .h(format!("fz-{}", rng.below(10)), nasty_value(rng))
            .bytes(),
        7 => {
            // A header name that ends inside a multi-byte character whose rest opens the value.
            let name: &[u8] = rng.pick(&[&b"x\xc6"[..], b"\xe2\x82", b"\xf0\x9f\x98", b"\xc3"]);
            let value: &[u8] = rng.pick(&[&b"\x88y"[..], b"\xac", b"\x80\x80", b"\xa9"]);
            base.h(name, value).bytes()
        }
        8 => {
            let count = rng.between(60, 200);
            (0..count)
                .fold(base, |f, n| f.h(format!("h{n}"), "v"))
                .bytes()
        }
        9 => {
            base.eol = rng.pick(&[&b"\r\n"[..], b"\r", b"\n\r"]);
            base.body(body(rng)).bytes()
        }
        10 => {
            let mut bytes = valid_frame(rng, session).bytes;
            bytes.truncate(rng.below(bytes.len()));
            bytes
        }
        _ => {
            // Leading garbage, whitespace before the command, or a NUL-injected header.
            let mut bytes = rng
                .pick(&[&b" "[..], b"\t", b"\0", b"\r", b"\xef\xbb\xbf"])
                .to_vec();
            bytes.extend(base.h("x", b"y\0ERROR\nmessage:forged").bytes());
            bytes
        }
    }
}

/// A frame that is valid until the hostile element is added: a SEND to a shared destination
/// mostly (so a mistake in it reaches subscribers), or another command with its own headers.
fn hostile_base(rng: &mut Rng) -> RawFrame {
    match rng.below(10) {
        0..=5 => RawFrame::new("SEND").h("destination", shared_destination(rng)),
        6 => RawFrame::new("SUBSCRIBE")
            .h("id", format!("s{}", rng.below(6)))
            .h("destination", shared_destination(rng)),
        7 => RawFrame::new("ACK").h("id", format!("{}-{}", rng.below(6), rng.below(6))),
        8 => RawFrame::new("BEGIN").h("transaction", format!("t{}", rng.below(4))),
        _ => RawFrame::new("UNSUBSCRIBE").h("id", format!("s{}", rng.below(6))),
    }
}

/// The version an `accept-version` list settles on (Herald speaks all three).
fn negotiated(list: &str) -> Option<Version> {
    Version::negotiate(Some(list), &Version::ALL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_frames_are_exact() {
        let frame = RawFrame::new("SEND")
            .h("destination", "/topic/a")
            .body(b"hi".to_vec());
        assert_eq!(
            frame.bytes(),
            b"SEND\ndestination:/topic/a\ncontent-length:2\n\nhi\0".to_vec()
        );
    }

    #[test]
    fn escapes_follow_stomp_1_2() {
        assert_eq!(escape_12("a:b\\c\nd\re"), "a\\cb\\\\c\\nd\\re");
    }

    #[test]
    fn registered_sends_parse_as_what_they_register() {
        use herald_protocol::{Limits, ParseOptions, Parsed, parse};
        let options = ParseOptions {
            version: Version::V1_2,
            limits: Limits {
                max_frame_bytes: 1 << 20,
                max_headers: 64,
                max_header_line_bytes: 8192,
                max_body_bytes: 1 << 20,
            },
        };
        let mut rng = Rng::new(5);
        let mut session = Session::new("t".into());
        session.speaks_12 = true;
        let mut checked = 0;
        for _ in 0..500 {
            let piece = send(&mut rng, &mut session);
            let Some(registered) = piece.registered else {
                continue;
            };
            let Ok(Parsed::Frame(frame)) = parse(&piece.bytes, &options) else {
                panic!(
                    "unparseable registered SEND: {:?}",
                    piece.bytes.escape_ascii().to_string()
                );
            };
            assert_eq!(&piece.bytes[frame.body.clone()], registered.body.as_slice());
            for (name, value) in registered.headers.unwrap() {
                assert_eq!(frame.headers.get(&name), Some(value.as_str()));
            }
            checked += 1;
        }
        assert!(checked > 100);
    }
}
