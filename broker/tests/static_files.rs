//! `websocket.static_dir`: plain GETs on the WebSocket port answered from a directory, and
//! every way out of that directory refused. Raw HTTP over a real socket.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{Client, TestServer, config, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(10);

/// Status line and body (headers kept in the head) of one raw request.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Sends `request` as written and reads the answer until the server closes.
async fn raw(addr: SocketAddr, request: &[u8]) -> Answer {
    within(LIMIT, "an HTTP answer", async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await.unwrap();
        let split = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&bytes)));
        let head = String::from_utf8(bytes[..split].to_vec()).unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        Answer {
            status,
            head,
            body: bytes[split + 4..].to_vec(),
        }
    })
    .await
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    raw(addr, request.as_bytes()).await
}

/// `root/site` (served) holding pages, and `root/secret.txt` beside it (never served).
fn site(root: &Path) -> std::path::PathBuf {
    let site = root.join("site");
    std::fs::create_dir_all(site.join("app")).unwrap();
    std::fs::create_dir_all(site.join(".git")).unwrap();
    std::fs::write(site.join("index.html"), "<h1>chat</h1>").unwrap();
    std::fs::write(site.join("app/main.js"), "console.log(1)").unwrap();
    std::fs::write(site.join("app/style.css"), "b{}").unwrap();
    std::fs::write(site.join("app/index.html"), "app index").unwrap();
    std::fs::write(site.join("a b.txt"), "spaced").unwrap();
    std::fs::write(site.join(".env"), "SECRET=1").unwrap();
    std::fs::write(site.join(".git/config"), "secret").unwrap();
    std::fs::write(root.join("secret.txt"), "outside").unwrap();
    std::os::unix::fs::symlink(root.join("secret.txt"), site.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink(root, site.join("up")).unwrap();
    std::os::unix::fs::symlink(site.join("app/main.js"), site.join("inside.js")).unwrap();
    site
}

async fn server_with_site(root: &Path) -> TestServer {
    let mut config = config();
    config.websocket.static_dir = Some(site(root));
    TestServer::start(config).await
}

#[tokio::test]
async fn files_are_served_with_their_content_types() {
    let root = tempfile::tempdir().unwrap();
    let server = server_with_site(root.path()).await;
    let addr = server.ws_addr;
    for (path, body, content_type) in [
        ("/", "<h1>chat</h1>", "text/html; charset=utf-8"),
        ("/index.html", "<h1>chat</h1>", "text/html; charset=utf-8"),
        ("/app/", "app index", "text/html; charset=utf-8"),
        (
            "/app/main.js?v=2",
            "console.log(1)",
            "text/javascript; charset=utf-8",
        ),
        ("/app/style.css", "b{}", "text/css; charset=utf-8"),
        ("/a%20b.txt", "spaced", "text/plain; charset=utf-8"),
        // A symlink that stays inside the directory is followed.
        (
            "/inside.js",
            "console.log(1)",
            "text/javascript; charset=utf-8",
        ),
    ] {
        let answer = get(addr, path).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.head);
        assert_eq!(answer.body, body.as_bytes(), "{path}");
        assert_eq!(answer.header("content-type"), Some(content_type), "{path}");
        assert_eq!(
            answer.header("content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    }
}

#[tokio::test]
async fn nothing_outside_the_directory_or_hidden_is_served() {
    let root = tempfile::tempdir().unwrap();
    let server = server_with_site(root.path()).await;
    let addr = server.ws_addr;
    for path in [
        "/../secret.txt",
        "/app/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2fsecret.txt",
        "/app/%2e%2e/%2e%2e/secret.txt",
        "/..%5csecret.txt",
        "/escape.txt",
        "/up/secret.txt",
        "/.env",
        "/.git/config",
        "/%2egit/config",
        "/index.html%00.js",
        "/missing.html",
        "/app",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        &format!("/{}", root.path().join("secret.txt").display()),
    ] {
        let answer = get(addr, path).await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.head);
        assert!(
            !String::from_utf8_lossy(&answer.body).contains("outside")
                && !String::from_utf8_lossy(&answer.body).contains("secret"),
            "{path} leaked a file"
        );
    }
    // An absolute URI as the request target, and broken escapes.
    let absolute = raw(
        addr,
        b"GET http://localhost/../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(absolute.status, 404, "{}", absolute.head);
    for path in ["/%zz", "/%2", "/%ff.txt"] {
        assert_eq!(get(addr, path).await.status, 400, "{path}");
    }
}

#[tokio::test]
async fn other_methods_and_oversized_heads_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let server = server_with_site(root.path()).await;
    let addr = server.ws_addr;
    let post = raw(
        addr,
        b"POST /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
    )
    .await;
    assert_eq!(post.status, 400, "{}", post.head);
    let mut huge = b"GET /index.html HTTP/1.1\r\nHost: x\r\n".to_vec();
    while huge.len() < 64 * 1024 {
        huge.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    huge.extend_from_slice(b"\r\n");
    // The server stops reading at its head limit and may reset what it did not read.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(&huge).await;
    let mut bytes = Vec::new();
    let _ = within(
        LIMIT,
        "the oversized head's answer",
        stream.read_to_end(&mut bytes),
    )
    .await;
    assert!(
        bytes.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
}

#[tokio::test]
async fn a_file_over_the_size_cap_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let server = server_with_site(root.path()).await;
    let big = root.path().join("site/big.bin");
    // Sparse: no 16 MiB written to disk.
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(16 * 1024 * 1024 + 1).unwrap();
    assert_eq!(get(server.ws_addr, "/big.bin").await.status, 403);
    file.set_len(16 * 1024 * 1024).unwrap();
    let answer = get(server.ws_addr, "/big.bin").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body.len(), 16 * 1024 * 1024);
}

#[tokio::test]
async fn the_websocket_path_still_upgrades_and_a_get_on_it_is_426() {
    let root = tempfile::tempdir().unwrap();
    let server = server_with_site(root.path()).await;
    assert_eq!(get(server.ws_addr, "/ws").await.status, 426);
    let mut client = Client::ws(server.ws_addr, None).await;
    client.connect().await;
    client
        .publish_confirmed("/topic/static", "still STOMP")
        .await;
}

#[tokio::test]
async fn without_static_dir_a_get_is_426() {
    let server = TestServer::with_defaults().await;
    let answer = get(server.ws_addr, "/index.html").await;
    assert_eq!(answer.status, 426, "{}", answer.head);
}
