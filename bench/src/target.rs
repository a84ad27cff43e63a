//! Where to connect: the parsed `--url`, its resolved address, the CONNECT frame to send and
//! the source address each connection binds to.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use herald_protocol::{Command, Frame, Version, encode_to_bytes};

use crate::cli::Common;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Ws,
    Tcp,
}

/// A parsed `ws://host:port/path` or `tcp://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub transport: Transport,
    pub host: String,
    pub port: u16,
    /// The WebSocket path (with any query); empty for TCP.
    pub path: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, String> {
        let (transport, rest) = if let Some(rest) = url.strip_prefix("ws://") {
            (Transport::Ws, rest)
        } else if let Some(rest) = url.strip_prefix("tcp://") {
            (Transport::Tcp, rest)
        } else {
            return Err(format!(
                "unsupported URL {url:?}: expected ws://host:port/path or tcp://host:port"
            ));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if transport == Transport::Tcp && !path.is_empty() && path != "/" {
            return Err(format!("a tcp:// URL has no path: {url:?}"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| format!("bad port in {url:?}"))?;
                (host.trim_start_matches('[').trim_end_matches(']'), port)
            }
            _ => return Err(format!("{url:?} needs host:port")),
        };
        let path = match transport {
            Transport::Ws if path.is_empty() => "/".to_owned(),
            Transport::Ws => path.to_owned(),
            Transport::Tcp => String::new(),
        };
        Ok(Url {
            transport,
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// The ws:// URL, for messages.
    pub fn ws_url(&self) -> String {
        format!("ws://{}:{}{}", self.host, self.port, self.path)
    }
}

/// Everything a connection needs to reach the broker and say CONNECT.
#[derive(Debug)]
pub struct Endpoint {
    pub url: Url,
    pub addr: SocketAddr,
    pub source_ips: u8,
    pub connect_frame: Bytes,
}

impl Endpoint {
    /// The `--url` endpoint: publishers' and producers', and everyone's without `--sub-url`.
    pub async fn resolve(common: &Common) -> Result<Endpoint, String> {
        Endpoint::resolve_url(common, &common.url).await
    }

    /// The endpoints worker-held connections use, connection i the (i mod n)-th: the
    /// `--sub-url`s in order, or `--url` alone.
    pub async fn resolve_subscribers(common: &Common) -> Result<Vec<Arc<Endpoint>>, String> {
        if common.sub_urls.is_empty() {
            return Ok(vec![Arc::new(Endpoint::resolve(common).await?)]);
        }
        let mut endpoints = Vec::with_capacity(common.sub_urls.len());
        for url in &common.sub_urls {
            endpoints.push(Arc::new(Endpoint::resolve_url(common, url).await?));
        }
        Ok(endpoints)
    }

    async fn resolve_url(common: &Common, url: &str) -> Result<Endpoint, String> {
        let url = Url::parse(url)?;
        let addrs = tokio::net::lookup_host((url.host.as_str(), url.port))
            .await
            .map_err(|e| format!("resolving {}: {e}", url.host))?
            .collect::<Vec<_>>();
        let addr = addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| format!("{} resolves to no address", url.host))?;
        if common.source_ips > 0 && !addr.is_ipv4() {
            return Err("--source-ips needs an IPv4 broker address".to_owned());
        }
        let host = common.host.as_deref().unwrap_or(&url.host);
        let connect_frame =
            connect_frame(host, common.login.as_deref(), common.passcode.as_deref());
        Ok(Endpoint {
            url,
            addr,
            source_ips: common.source_ips,
            connect_frame,
        })
    }

    /// The local address connection number `index` binds to, if source IPs are in use.
    pub fn source_addr(&self, index: usize) -> Option<SocketAddr> {
        source_ip(index, self.source_ips).map(|ip| SocketAddr::new(IpAddr::V4(ip), 0))
    }
}

/// The endpoint of worker-held connection number `index`: round-robin over `endpoints`.
pub fn for_connection(endpoints: &[Arc<Endpoint>], index: usize) -> &Arc<Endpoint> {
    &endpoints[index % endpoints.len()]
}

/// 127.0.0.1 .. 127.0.0.n, round-robin by connection index; `None` when `n` is 0.
pub fn source_ip(index: usize, n: u8) -> Option<Ipv4Addr> {
    (n > 0).then(|| Ipv4Addr::new(127, 0, 0, 1 + (index % usize::from(n)) as u8))
}

/// CONNECT for STOMP 1.2 without heart-beats, so idle connections cost the broker no timers.
pub fn connect_frame(host: &str, login: Option<&str>, passcode: Option<&str>) -> Bytes {
    let mut frame = Frame::new(Command::Connect)
        .header("accept-version", "1.2")
        .header("host", host)
        .header("heart-beat", "0,0");
    if let Some(login) = login {
        frame = frame.header("login", login);
    }
    if let Some(passcode) = passcode {
        frame = frame.header("passcode", passcode);
    }
    encode_to_bytes(&frame, Version::V1_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ws_and_tcp_urls() {
        assert_eq!(
            Url::parse("ws://127.0.0.1:15674/ws").unwrap(),
            Url {
                transport: Transport::Ws,
                host: "127.0.0.1".to_owned(),
                port: 15674,
                path: "/ws".to_owned()
            }
        );
        let tcp = Url::parse("tcp://localhost:61613").unwrap();
        assert_eq!(tcp.transport, Transport::Tcp);
        assert_eq!((tcp.host.as_str(), tcp.port), ("localhost", 61613));
        assert_eq!(Url::parse("ws://h:1").unwrap().path, "/");
        assert!(Url::parse("http://h:1/ws").is_err());
        assert!(Url::parse("tcp://h").is_err());
        assert!(Url::parse("tcp://h:1/x").is_err());
    }

    #[test]
    fn connections_go_round_robin_over_the_subscriber_endpoints() {
        let endpoints: Vec<Arc<Endpoint>> = (1..=3)
            .map(|port| {
                Arc::new(Endpoint {
                    url: Url::parse(&format!("tcp://127.0.0.1:{port}")).unwrap(),
                    addr: SocketAddr::from(([127, 0, 0, 1], port)),
                    source_ips: 0,
                    connect_frame: Bytes::new(),
                })
            })
            .collect();
        let ports: Vec<u16> = (0..7)
            .map(|i| for_connection(&endpoints, i).url.port)
            .collect();
        assert_eq!(ports, [1, 2, 3, 1, 2, 3, 1]);
        assert_eq!(for_connection(&endpoints[..1], 5).url.port, 1);
    }

    #[tokio::test]
    async fn subscriber_endpoints_are_the_sub_urls_in_order_or_the_url() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "herald-load",
            "conns",
            "--url",
            "tcp://127.0.0.1:1",
            "--sub-url",
            "tcp://127.0.0.1:2",
            "--sub-url",
            "ws://127.0.0.1:3/ws",
        ])
        .unwrap();
        let ports = |endpoints: Vec<Arc<Endpoint>>| -> Vec<u16> {
            endpoints.iter().map(|e| e.addr.port()).collect()
        };
        let spread = Endpoint::resolve_subscribers(&cli.common).await.unwrap();
        assert_eq!(ports(spread), [2, 3]);
        let plain =
            crate::cli::Cli::try_parse_from(["herald-load", "conns", "--url", "tcp://127.0.0.1:1"])
                .unwrap();
        assert_eq!(
            ports(Endpoint::resolve_subscribers(&plain.common).await.unwrap()),
            [1]
        );
    }

    #[test]
    fn source_ips_go_round_robin() {
        assert_eq!(source_ip(5, 0), None);
        assert_eq!(source_ip(0, 3), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(source_ip(4, 3), Some(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(source_ip(253, 254), Some(Ipv4Addr::new(127, 0, 0, 254)));
    }
}
