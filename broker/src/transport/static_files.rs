//! Static files on the WebSocket port (`websocket.static_dir`), so a page and its STOMP socket
//! share an origin. One `GET` per connection, answered and closed; only regular files inside
//! the directory (after following symlinks) are served, and no name that starts with `.`.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::server::Request;
use tokio_tungstenite::tungstenite::http::StatusCode;

use super::stream::Stream;

/// The largest file served: the directory is for a page and its assets, not downloads.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// How long the peer may take to close after the answer was written.
const LINGER: Duration = Duration::from_secs(1);

/// Answers `request` from `dir` and ends the connection. Returns the status sent. The caller
/// bounds the whole exchange (`stomp.connect_timeout_ms`), which also bounds the writing.
pub async fn serve(stream: &mut Stream, request: &Request, dir: &Path) -> StatusCode {
    let (status, content_type, body) = match resolve(dir, request.uri().path()).await {
        Ok(file) => match read_file(&file).await {
            Ok(body) => (StatusCode::OK, content_type(&file), body),
            Err(status) => refusal(status),
        },
        Err(status) => refusal(status),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         X-Content-Type-Options: nosniff\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let written = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await
    };
    if written.await.is_ok() {
        // Drain until the peer closes, so the answer is not destroyed by a reset.
        let _ = tokio::time::timeout(LINGER, async {
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            io::Result::Ok(())
        })
        .await;
    }
    status
}

fn refusal(status: StatusCode) -> (StatusCode, &'static str, Vec<u8>) {
    let reason = status.canonical_reason().unwrap_or("error");
    (
        status,
        "text/plain; charset=utf-8",
        format!("{reason}\n").into_bytes(),
    )
}

/// The file a request path names inside `dir`: `404` for anything missing, outside the
/// directory or hidden, `400` for a path that cannot be decoded. A path ending in `/` names
/// its `index.html`.
async fn resolve(dir: &Path, path: &str) -> Result<PathBuf, StatusCode> {
    let decoded = percent_decode(path).ok_or(StatusCode::BAD_REQUEST)?;
    let mut relative = PathBuf::new();
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        // `..`, `.` and dotfiles in one rule; a backslash or NUL is never part of a name here.
        if segment.starts_with('.') || segment.contains(['\\', '\0']) {
            return Err(StatusCode::NOT_FOUND);
        }
        relative.push(segment);
    }
    // A segment such as `C:` or `/x` would not be a plain name; refuse anything else.
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(StatusCode::NOT_FOUND);
    }
    if decoded.is_empty() || decoded.ends_with('/') {
        relative.push("index.html");
    }
    let root = tokio::fs::canonicalize(dir)
        .await
        .map_err(|_| StatusCode::NOT_FOUND)?;
    let file = tokio::fs::canonicalize(root.join(&relative))
        .await
        .map_err(|_| StatusCode::NOT_FOUND)?;
    // Symlinks are followed by canonicalize; one leading out of the directory is refused.
    if !file.starts_with(&root) {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(file)
}

async fn read_file(file: &Path) -> Result<Vec<u8>, StatusCode> {
    let meta = tokio::fs::metadata(file)
        .await
        .map_err(|_| StatusCode::NOT_FOUND)?;
    if !meta.is_file() {
        return Err(StatusCode::NOT_FOUND);
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(StatusCode::FORBIDDEN);
    }
    let mut body = Vec::with_capacity(meta.len() as usize);
    // `take` bounds a file that grew after the size check.
    tokio::fs::File::open(file)
        .await
        .map_err(|_| StatusCode::NOT_FOUND)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut body)
        .await
        .map_err(|_| StatusCode::NOT_FOUND)?;
    if body.len() as u64 > MAX_FILE_BYTES {
        return Err(StatusCode::FORBIDDEN);
    }
    Ok(body)
}

/// `%XX` escapes decoded; `None` for a broken escape or a result that is not UTF-8.
fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn content_type(file: &Path) -> &'static str {
    let extension = file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("ico") => "image/x-icon",
        Some("webp") => "image/webp",
        Some("woff2") => "font/woff2",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a%20b").as_deref(), Some("/a b"));
        assert_eq!(percent_decode("/%2e%2E/x").as_deref(), Some("/../x"));
        assert_eq!(percent_decode("/%2"), None);
        assert_eq!(percent_decode("/%zz"), None);
        assert_eq!(percent_decode("/%ff"), None, "not UTF-8");
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(
            content_type(Path::new("a/app.JS")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("index.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("noext")), "application/octet-stream");
    }
}
