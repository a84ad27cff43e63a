//! TLS on both listeners (issue 12, item 8): `stomp+ssl` and `wss://` with a real rustls
//! client, client certificates (none/optional/required), and certificate reload (directly and
//! by SIGHUP to the real binary) while sessions stay up. The certificates are the test-only
//! ones in `tests/fixtures/tls` (`make.sh` there regenerates them).

mod common;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use common::{TIMEOUT, config, connect_frame, encoded, send_frame, subscribe_frame, within};
use futures_util::{SinkExt, StreamExt};
use herald::config::{ClientAuth, Config, TlsConfig};
use herald::server::{Server, TlsReload};
use herald_protocol::{Command, Decoded, Decoder, Frame, ParseOptions};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn fixture_str(name: &str) -> String {
    fixture(name).display().to_string()
}

fn tls_settings(client_auth: ClientAuth) -> TlsConfig {
    TlsConfig {
        enabled: true,
        cert_file: fixture_str("server.pem"),
        key_file: fixture_str("server-key.pem"),
        client_auth,
        client_ca_file: match client_auth {
            ClientAuth::None => String::new(),
            _ => fixture_str("ca.pem"),
        },
    }
}

fn tls_config(client_auth: ClientAuth) -> Config {
    let mut config = config();
    config.websocket.tls = tls_settings(client_auth);
    config.tcp.tls = tls_settings(client_auth);
    config
}

/// A served node with its addresses and its TLS reload handle.
struct Served {
    tcp: std::net::SocketAddr,
    ws: std::net::SocketAddr,
    reload: TlsReload,
    _stop: oneshot::Sender<()>,
}

async fn serve(config: Config) -> Served {
    config.validate().expect("valid test configuration");
    let server = Server::bind(config).await.expect("bind");
    let (tcp, ws) = (server.tcp_addr().unwrap(), server.ws_addr().unwrap());
    let reload = server.tls_reload();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    Served {
        tcp,
        ws,
        reload,
        _stop: stop,
    }
}

/// A client trusting only the test CA, with the test client certificate if `with_cert`.
fn connector(with_cert: bool) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(fixture("ca.pem")).unwrap() {
        roots.add(ca.unwrap()).unwrap();
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match with_cert {
        false => builder.with_no_client_auth(),
        true => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(fixture("client.pem"))
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_file(fixture("client-key.pem")).unwrap(),
            )
            .unwrap(),
    };
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(
    addr: std::net::SocketAddr,
    with_cert: bool,
) -> io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    within(
        TIMEOUT,
        "TLS handshake",
        connector(with_cert).connect(name, tcp),
    )
    .await
}

/// A TLS connection without a client certificate, on which the server must have presented the
/// certificate of fixture `pem`.
async fn tls_connect_presenting(addr: std::net::SocketAddr, pem: &str) -> TlsStream<TcpStream> {
    let tls = tls_connect(addr, false).await.unwrap();
    assert_eq!(server_certificate(&tls), certificate(&fixture(pem)));
    tls
}

/// The DER of the first certificate of a PEM file.
fn certificate(path: &Path) -> CertificateDer<'static> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
}

fn server_certificate(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// STOMP over any byte stream, just enough for these tests.
struct Stomp<S> {
    stream: S,
    buf: BytesMut,
    decoder: Decoder,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stomp<S> {
    fn new(stream: S) -> Stomp<S> {
        Stomp {
            stream,
            buf: BytesMut::new(),
            decoder: Decoder::new(ParseOptions::default()),
        }
    }

    async fn send(&mut self, frame: &Frame) -> io::Result<()> {
        self.stream.write_all(&encoded(frame)).await?;
        self.stream.flush().await
    }

    /// The next frame; `Err` when the stream ends or breaks first.
    async fn recv(&mut self) -> io::Result<Frame> {
        within(TIMEOUT, "a frame", async {
            loop {
                match self.decoder.decode(&mut self.buf) {
                    Ok(Some(Decoded::Frame(frame))) => return Ok(frame),
                    Ok(Some(Decoded::HeartBeat)) => continue,
                    Ok(None) => {}
                    Err(e) => return Err(io::Error::other(e.to_string())),
                }
                if self.stream.read_buf(&mut self.buf).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
        })
        .await
    }

    async fn connect(&mut self) -> io::Result<Frame> {
        self.send(&connect_frame("1.2")).await?;
        self.recv().await
    }

    /// A SEND with a receipt, answered.
    async fn publish_confirmed(&mut self, destination: &str, body: &str) {
        let frame = send_frame(destination, body).header("receipt", "r");
        self.send(&frame).await.unwrap();
        let receipt = self.recv().await.unwrap();
        assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    }
}

#[tokio::test]
async fn stomp_over_tls_and_wss_on_both_listeners() {
    let served = serve(tls_config(ClientAuth::None)).await;
    let tls = tls_connect_presenting(served.tcp, "server.pem").await;
    let mut subscriber = Stomp::new(tls);
    assert_eq!(
        subscriber.connect().await.unwrap().command,
        Command::Connected
    );
    let subscribe = subscribe_frame("s", "/topic/t").header("receipt", "sub");
    subscriber.send(&subscribe).await.unwrap();
    assert_eq!(subscriber.recv().await.unwrap().command, Command::Receipt);

    // wss:// over the same kind of TLS connection, to the WebSocket listener.
    let tls = tls_connect(served.ws, false).await.unwrap();
    let mut request = format!("wss://localhost:{}/ws", served.ws.port())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "v12.stomp".parse().unwrap());
    let (mut ws, response) = within(
        TIMEOUT,
        "wss handshake",
        tokio_tungstenite::client_async(request, tls),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 101);
    let message = |frame: &Frame| Message::binary(encoded(frame).freeze());
    ws.send(message(&connect_frame("1.2"))).await.unwrap();
    let connected = within(TIMEOUT, "CONNECTED over wss", ws.next()).await;
    let connected = connected.unwrap().unwrap().into_data();
    assert!(connected.starts_with(b"CONNECTED\n"), "{connected:?}");
    ws.send(message(&send_frame("/topic/t", "over wss")))
        .await
        .unwrap();

    let message = subscriber.recv().await.unwrap();
    assert_eq!(message.command, Command::Message);
    assert_eq!(message.body.as_ref(), b"over wss");
}

#[tokio::test]
async fn plain_stomp_to_a_tls_listener_is_not_served() {
    let served = serve(tls_config(ClientAuth::None)).await;
    let mut plain = Stomp::new(TcpStream::connect(served.tcp).await.unwrap());
    plain.send(&connect_frame("1.2")).await.unwrap();
    assert!(plain.recv().await.is_err(), "a plain client got a frame");
}

#[tokio::test]
async fn a_required_client_certificate_refuses_clients_without_one() {
    let served = serve(tls_config(ClientAuth::Required)).await;
    // TLS 1.3 finishes the client's side of the handshake before the server has checked the
    // client; the refusal shows as an alert on the first read.
    let refused = match tls_connect(served.tcp, false).await {
        Err(_) => true,
        Ok(tls) => Stomp::new(tls).connect().await.is_err(),
    };
    assert!(refused, "a client without a certificate was served");
    let with_cert = tls_connect(served.tcp, true).await.unwrap();
    let connected = Stomp::new(with_cert).connect().await.unwrap();
    assert_eq!(connected.command, Command::Connected);
}

#[tokio::test]
async fn an_optional_client_certificate_serves_clients_with_or_without_one() {
    let served = serve(tls_config(ClientAuth::Optional)).await;
    for with_cert in [false, true] {
        let tls = tls_connect(served.tcp, with_cert).await.unwrap();
        let connected = Stomp::new(tls).connect().await.unwrap();
        assert_eq!(
            connected.command,
            Command::Connected,
            "with_cert={with_cert}"
        );
    }
}

/// Copies a server certificate and key from the fixtures to `dir` under fixed names.
fn install_certificate(dir: &Path, which: &str) {
    std::fs::copy(fixture(&format!("{which}.pem")), dir.join("cert.pem")).unwrap();
    std::fs::copy(fixture(&format!("{which}-key.pem")), dir.join("key.pem")).unwrap();
}

fn settings_in(dir: &Path) -> TlsConfig {
    TlsConfig {
        enabled: true,
        cert_file: dir.join("cert.pem").display().to_string(),
        key_file: dir.join("key.pem").display().to_string(),
        ..TlsConfig::default()
    }
}

#[tokio::test]
async fn reload_swaps_the_certificate_while_sessions_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    install_certificate(dir.path(), "server");
    let mut config = config();
    config.tcp.tls = settings_in(dir.path());
    let served = serve(config).await;

    let before = tls_connect_presenting(served.tcp, "server.pem").await;
    let mut session = Stomp::new(before);
    session.connect().await.unwrap();

    install_certificate(dir.path(), "server2");
    served.reload.reload().unwrap();
    let _after = tls_connect_presenting(served.tcp, "server2.pem").await;
    session.publish_confirmed("/topic/x", "still here").await;

    // Broken files: the reload fails and the certificate in force stays.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    assert!(served.reload.reload().is_err());
    let _still = tls_connect_presenting(served.tcp, "server2.pem").await;
    session.publish_confirmed("/topic/x", "and here").await;
}

/// SIGHUP to the real binary reloads the certificate; an established session goes on.
#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_the_certificate_of_the_running_binary() {
    use std::io::BufRead;
    use std::process::{Command as Process, Stdio};

    let dir = tempfile::tempdir().unwrap();
    install_certificate(dir.path(), "server");
    let config_file = dir.path().join("herald.toml");
    let settings = settings_in(dir.path());
    std::fs::write(
        &config_file,
        format!(
            "[websocket]\nenabled = false\n[tcp]\nbind = \"127.0.0.1:0\"\n[tcp.tls]\nenabled = true\ncert_file = {:?}\nkey_file = {:?}\n",
            settings.cert_file, settings.key_file
        ),
    )
    .unwrap();
    let mut child = Process::new(env!("CARGO_BIN_EXE_herald"))
        .arg("--config")
        .arg(&config_file)
        .args(["--log-level", "info"])
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn herald");
    let pid = child.id().to_string();
    let kill = |signal: &str| {
        let status = Process::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    };
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let reader = std::io::BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut wait_for = async |text: &str| -> String {
        loop {
            let line = tokio::time::timeout(std::time::Duration::from_secs(30), lines.recv())
                .await
                .ok()
                .flatten();
            match line {
                Some(line) if line.contains(text) => return line,
                Some(_) => {}
                None => panic!("herald never logged {text:?}"),
            }
        }
    };
    let listening = wait_for("listening").await;
    let start = listening.find("addr=").unwrap() + "addr=".len();
    let end = listening[start..]
        .find(' ')
        .map_or(listening.len(), |n| start + n);
    let addr: std::net::SocketAddr = listening[start..end].parse().unwrap();

    let before = tls_connect_presenting(addr, "server.pem").await;
    let mut session = Stomp::new(before);
    session.connect().await.unwrap();

    install_certificate(dir.path(), "server2");
    kill("-HUP");
    wait_for("TLS certificates reloaded").await;
    let _after = tls_connect_presenting(addr, "server2.pem").await;
    session
        .publish_confirmed("/topic/x", "survived the reload")
        .await;

    kill("-TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn tls_settings_are_checked_with_their_files() {
    let check = |text: &str| {
        Config::from_toml_str(text, "test.toml").and_then(|config| herald::check::files(&config))
    };
    let err = check("[tcp.tls]\nenabled = true\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tcp.tls.cert_file") && err.contains("tcp.tls.key_file"),
        "{err}"
    );
    let missing = format!(
        "[websocket.tls]\nenabled = true\ncert_file = {:?}\nkey_file = \"/nonexistent/key.pem\"\n",
        fixture_str("server.pem")
    );
    let err = check(&missing).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/key.pem"), "{err}");
    let no_ca = format!(
        "[tcp.tls]\nenabled = true\ncert_file = {:?}\nkey_file = {:?}\nclient_auth = \"required\"\n",
        fixture_str("server.pem"),
        fixture_str("server-key.pem")
    );
    let err = check(&no_ca).unwrap_err().to_string();
    assert!(err.contains("tcp.tls.client_ca_file"), "{err}");
    let good = format!("{no_ca}client_ca_file = {:?}\n", fixture_str("ca.pem"));
    check(&good).unwrap();
}

/// A client that opens a connection to a TLS listener and never says hello is closed at the
/// connect timeout, on tokio's paused clock.
#[tokio::test(start_paused = true)]
async fn a_stalled_tls_handshake_is_closed_at_the_connect_timeout() {
    let mut config = tls_config(ClientAuth::None);
    config.stomp.connect_timeout_ms = 1_000;
    let served = serve(config).await;
    let started = tokio::time::Instant::now();
    let mut silent = TcpStream::connect(served.tcp).await.unwrap();
    let mut sink = [0u8; 64];
    let read = within(TIMEOUT, "the server to close", silent.read(&mut sink)).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(1_000) && waited < TIMEOUT,
        "closed after {waited:?}"
    );
}

/// Behind a TLS-passthrough load balancer the PROXY header comes first, in clear, then the
/// TLS handshake: the session sees the client it names.
#[tokio::test]
async fn a_proxy_header_before_the_tls_handshake_names_the_client() {
    let mut config = tls_config(ClientAuth::None);
    config.tcp.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let served = serve(config).await;
    let session = async |client: &str| {
        let mut tcp = TcpStream::connect(served.tcp).await.unwrap();
        let header = format!("PROXY TCP4 {client} 127.0.0.1 50000 61613\r\n");
        tcp.write_all(header.as_bytes()).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let tls = within(
            TIMEOUT,
            "TLS handshake",
            connector(false).connect(name, tcp),
        )
        .await;
        Stomp::new(tls.unwrap()).connect().await.unwrap()
    };
    // Anonymous sessions are allowed from loopback only (the default).
    let refused = session("203.0.113.9").await;
    assert_eq!(refused.command, Command::Error, "{refused:?}");
    assert_eq!(refused.headers.get("message"), Some("access denied"));
    let accepted = session("127.0.0.2").await;
    assert_eq!(accepted.command, Command::Connected, "{accepted:?}");
}
