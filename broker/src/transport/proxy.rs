//! The client's real address behind a trusted proxy: the PROXY protocol header (v1 text, v2
//! binary) a load balancer writes before the client's bytes on TCP, and `X-Forwarded-For` on
//! the WebSocket upgrade. Both are believed only from `trusted_proxies`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::config::IpNetwork;

/// The twelve bytes that open a v2 header.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 line, CRLF included (the specification's bound).
const V1_MAX: usize = 107;
/// Fixed part of a v2 header: signature, version/command, family, length.
const V2_FIXED: usize = 16;

/// Why a PROXY header was refused; the connection is then closed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyError {
    #[error("no PROXY protocol header")]
    BadSignature,
    #[error("PROXY v1 line longer than {V1_MAX} bytes")]
    TooLong,
    #[error("malformed PROXY header: {0}")]
    Malformed(&'static str),
}

/// What [`parse`] makes of the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// At least this many more bytes are needed; never more than the header has left, so a
    /// reader can ask for exactly this and not consume the client's first bytes.
    Need(usize),
    /// A whole header of `len` bytes. `source` is the client, or `None` when the header
    /// names none (v1 `UNKNOWN`, v2 `LOCAL` or an unspecified family): the connection's own
    /// address stands.
    Done {
        source: Option<SocketAddr>,
        len: usize,
    },
}

/// Parses a PROXY header at the start of `buf`. Pure, for any bytes (fuzzed by proptest).
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let head = &buf[..buf.len().min(V2_SIGNATURE.len())];
    if head == &V2_SIGNATURE[..head.len()] {
        // Both versions are at least 15 bytes long, so asking for 12 never reads too far.
        if buf.len() < V2_SIGNATURE.len() {
            return Ok(Parsed::Need(V2_SIGNATURE.len() - buf.len()));
        }
        return parse_v2(buf);
    }
    let head = &buf[..buf.len().min(V1_PREFIX.len())];
    if head != &V1_PREFIX[..head.len()] {
        return Err(ProxyError::BadSignature);
    }
    if buf.len() < V2_SIGNATURE.len() {
        return Ok(Parsed::Need(V2_SIGNATURE.len() - buf.len()));
    }
    parse_v1(buf)
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return match buf.len() >= V1_MAX {
            true => Err(ProxyError::TooLong),
            // The end of the line is unknown: one byte at a time.
            false => Ok(Parsed::Need(1)),
        };
    };
    let line = std::str::from_utf8(&buf[V1_PREFIX.len()..end])
        .map_err(|_| ProxyError::Malformed("v1 line is not text"))?;
    let len = end + 2;
    let fields: Vec<&str> = line.split(' ').collect();
    let source = match fields.as_slice() {
        ["UNKNOWN", ..] => None,
        [
            family @ ("TCP4" | "TCP6"),
            source,
            destination,
            source_port,
            destination_port,
        ] => {
            let source: IpAddr = source
                .parse()
                .map_err(|_| ProxyError::Malformed("v1 source address"))?;
            let destination: IpAddr = destination
                .parse()
                .map_err(|_| ProxyError::Malformed("v1 destination address"))?;
            let v4 = *family == "TCP4";
            if source.is_ipv4() != v4 || destination.is_ipv4() != v4 {
                return Err(ProxyError::Malformed("v1 address of the wrong family"));
            }
            let port = |text: &str| text.parse::<u16>().ok().filter(|_| is_digits(text));
            let (Some(source_port), Some(_)) = (port(source_port), port(destination_port)) else {
                return Err(ProxyError::Malformed("v1 port"));
            };
            Some(SocketAddr::new(source, source_port))
        }
        _ => return Err(ProxyError::Malformed("v1 fields")),
    };
    Ok(Parsed::Done { source, len })
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    if buf.len() < V2_FIXED {
        return Ok(Parsed::Need(V2_FIXED - buf.len()));
    }
    let (version, command) = (buf[12] >> 4, buf[12] & 0x0f);
    if version != 2 {
        return Err(ProxyError::Malformed("v2 version"));
    }
    let family = buf[13];
    let len = V2_FIXED + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if buf.len() < len {
        return Ok(Parsed::Need(len - buf.len()));
    }
    let body = &buf[V2_FIXED..len];
    let source = match command {
        // LOCAL: the proxy's own connection (a health check); no client to name.
        0x0 => None,
        0x1 => v2_source(family, body)?,
        _ => return Err(ProxyError::Malformed("v2 command")),
    };
    Ok(Parsed::Done { source, len })
}

/// The source address of a v2 PROXY command; the family's high nibble is the address family,
/// the low one the transport (stream or datagram).
fn v2_source(family: u8, body: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    let short = ProxyError::Malformed("v2 address block shorter than its family");
    match family >> 4 {
        // AF_UNSPEC and AF_UNIX carry no IP address.
        0x0 | 0x3 => Ok(None),
        0x1 => {
            let block: &[u8; 12] = body
                .get(..12)
                .and_then(|b| b.try_into().ok())
                .ok_or(short)?;
            let ip = Ipv4Addr::from([block[0], block[1], block[2], block[3]]);
            let port = u16::from_be_bytes([block[8], block[9]]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        0x2 => {
            let block: &[u8; 36] = body
                .get(..36)
                .and_then(|b| b.try_into().ok())
                .ok_or(short)?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&block[..16]);
            let port = u16::from_be_bytes([block[32], block[33]]);
            Ok(Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                port,
            )))
        }
        _ => Err(ProxyError::Malformed("v2 address family")),
    }
}

/// Reads exactly one PROXY header from `stream` (nothing of what follows it). The caller
/// bounds the time.
pub async fn read_header(
    stream: &mut (impl AsyncRead + Unpin),
) -> Result<Option<SocketAddr>, ProxyReadError> {
    let mut buf = Vec::with_capacity(V1_MAX);
    loop {
        match parse(&buf)? {
            Parsed::Done { source, .. } => return Ok(source),
            Parsed::Need(more) => {
                let start = buf.len();
                buf.resize(start + more, 0);
                stream.read_exact(&mut buf[start..]).await?;
            }
        }
    }
}

/// A PROXY header that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProxyReadError {
    #[error(transparent)]
    Header(#[from] ProxyError),
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

/// Whether `ip` is one of the trusted proxies.
pub fn is_trusted(ip: IpAddr, trusted: &[IpNetwork]) -> bool {
    trusted.iter().any(|network| network.contains(ip))
}

/// The client named by `X-Forwarded-For` values (every header, in order) on a connection
/// from `peer`: the rightmost address that is not a trusted proxy, since each proxy appends
/// the address it received from and only the trusted ones' additions can be believed. The
/// list is ignored when `peer` itself is not trusted. An entry that is not an address makes
/// the whole header unusable: `Err` with the entry.
pub fn forwarded_for<'a>(
    peer: IpAddr,
    values: impl Iterator<Item = &'a str>,
    trusted: &[IpNetwork],
) -> Result<IpAddr, String> {
    if !is_trusted(peer, trusted) {
        return Ok(peer);
    }
    let entries: Vec<&str> = values.flat_map(|v| v.split(',')).map(str::trim).collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        client = parse_forwarded(entry).ok_or_else(|| (*entry).to_owned())?;
        if !is_trusted(client, trusted) {
            break;
        }
    }
    Ok(client)
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn networks(list: &[&str]) -> Vec<IpNetwork> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn v1_tcp4_and_tcp6() {
        let header = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 61613\r\nCONNECT";
        assert_eq!(
            parse(header).unwrap(),
            Parsed::Done {
                source: Some("203.0.113.7:51000".parse().unwrap()),
                len: header.len() - 7,
            }
        );
        let header = b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n";
        assert_eq!(
            parse(header).unwrap(),
            Parsed::Done {
                source: Some("[2001:db8::1]:1".parse().unwrap()),
                len: header.len(),
            }
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n").unwrap(),
            Parsed::Done {
                source: None,
                len: 15
            }
        );
    }

    #[test]
    fn v1_hostile_lines_are_refused() {
        assert_eq!(parse(b"CONNECT\n"), Err(ProxyError::BadSignature));
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        assert_eq!(parse(&long), Err(ProxyError::TooLong));
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n"[..],
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(ProxyError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn v1_asks_for_one_byte_at_a_time_until_the_line_ends() {
        assert_eq!(parse(b"").unwrap(), Parsed::Need(12));
        assert_eq!(parse(b"PROXY TCP4 1").unwrap(), Parsed::Need(1));
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.push(0x20 | command);
        header.push(family);
        header.extend_from_slice(&(body.len() as u16).to_be_bytes());
        header.extend_from_slice(body);
        header
    }

    #[test]
    fn v2_ipv4_ipv6_local_and_tlvs() {
        let mut body = vec![198, 51, 100, 9, 10, 0, 0, 1, 0xC3, 0x50, 0xF0, 0x0D];
        body.extend_from_slice(&[0x04, 0, 1, 0]); // a TLV (NOOP) after the addresses
        let header = v2(1, 0x11, &body);
        assert_eq!(parse(&header[..12]).unwrap(), Parsed::Need(4));
        assert_eq!(parse(&header[..16]).unwrap(), Parsed::Need(body.len()));
        assert_eq!(
            parse(&header).unwrap(),
            Parsed::Done {
                source: Some("198.51.100.9:50000".parse().unwrap()),
                len: header.len(),
            }
        );
        let mut body = vec![0u8; 36];
        body[..16].copy_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        body[32..34].copy_from_slice(&443u16.to_be_bytes());
        assert_eq!(
            parse(&v2(1, 0x21, &body)).unwrap(),
            Parsed::Done {
                source: Some("[2001:db8::7]:443".parse().unwrap()),
                len: 52,
            }
        );
        assert_eq!(
            parse(&v2(0, 0x00, &[])).unwrap(),
            Parsed::Done {
                source: None,
                len: 16
            }
        );
    }

    #[test]
    fn v2_hostile_headers_are_refused() {
        let mut wrong_version = v2(1, 0x11, &[0; 12]);
        wrong_version[12] = 0x11;
        assert!(matches!(
            parse(&wrong_version),
            Err(ProxyError::Malformed(_))
        ));
        assert!(matches!(
            parse(&v2(1, 0x11, &[0; 11])),
            Err(ProxyError::Malformed(_))
        ));
        assert!(matches!(
            parse(&v2(7, 0x11, &[0; 12])),
            Err(ProxyError::Malformed(_))
        ));
        assert!(matches!(
            parse(&v2(1, 0x51, &[0; 12])),
            Err(ProxyError::Malformed(_))
        ));
        let mut bad_signature = v2(1, 0x11, &[0; 12]);
        bad_signature[8] = b'X';
        assert_eq!(parse(&bad_signature), Err(ProxyError::BadSignature));
    }

    #[test]
    fn forwarded_for_takes_the_rightmost_untrusted_address() {
        let trusted = networks(&["127.0.0.1", "10.0.0.0/8"]);
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let client = |values: &[&str]| forwarded_for(proxy, values.iter().copied(), &trusted);
        assert_eq!(client(&["203.0.113.1"]), Ok("203.0.113.1".parse().unwrap()));
        // A client-supplied first entry is not believed past an untrusted hop.
        assert_eq!(
            client(&["127.0.0.1, 198.51.100.2", "10.1.2.3"]),
            Ok("198.51.100.2".parse().unwrap())
        );
        assert_eq!(
            client(&["[2001:db8::1]:443"]),
            Ok("2001:db8::1".parse().unwrap())
        );
        assert_eq!(client(&[]), Ok(proxy));
        assert_eq!(client(&["10.0.0.5"]), Ok("10.0.0.5".parse().unwrap()));
        assert_eq!(client(&["nonsense, 10.0.0.5"]), Err("nonsense".to_owned()));
        let untrusted: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            forwarded_for(untrusted, ["127.0.0.1"].into_iter(), &trusted),
            Ok(untrusted)
        );
    }
}
