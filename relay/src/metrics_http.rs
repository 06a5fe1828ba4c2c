//! The optional metrics endpoint: `GET /metrics` over plain HTTP/1.1 on a loopback
//! address, answered with [`Metrics::render_prometheus`]; any other request gets 404.
//!
//! ```text
//!  TcpListener (loopback) ─► a task per connection (at most MAX_METRICS_CONNECTIONS)
//!      read the request head (≤ MAX_REQUEST_HEAD bytes, within REQUEST_TIMEOUT)
//!      ─► 200 text/plain | 404 | 400 ─► close
//! ```
//!
//! Deliberately tiny (no HTTP library): one request per connection, no keep-alive, no
//! body. The counts carry no id, key or address, but they do show how busy the relay is,
//! so the configuration accepts loopback addresses only (see
//! [`crate::config::Config::metrics_listen`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::metrics::Metrics;

/// Longest request head read: a scraper's `GET` is a few hundred bytes.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Time a client has to send its request head and read the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections served at once; more wait in the kernel's backlog. A scraper needs one.
pub const MAX_METRICS_CONNECTIONS: usize = 8;

/// Binds the endpoint. The caller has checked that `addr` is a loopback address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(MAX_METRICS_CONNECTIONS));
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Wait for a free slot first, so a flood of connections waits in the backlog.
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let metrics = Arc::clone(&metrics);
                    tasks.spawn(async move {
                        let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &metrics)).await;
                        drop(permit);
                    });
                }
                // Out of descriptors or similar: pause instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            },
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tasks.abort_all();
}

/// What a request head asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Metrics,
    NotFound,
    Bad,
}

async fn answer(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let request = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            break parse(&head);
        }
        if head.len() > MAX_REQUEST_HEAD {
            break Request::Bad;
        }
    };
    let (status, body) = match request {
        Request::Metrics => ("200 OK", metrics.render_prometheus()),
        Request::NotFound => ("404 Not Found", "not found; try /metrics\n".to_owned()),
        Request::Bad => ("400 Bad Request", "bad request\n".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Looks at the request line only: `GET /metrics HTTP/1.x` (a query string is ignored).
fn parse(head: &[u8]) -> Request {
    let Some(line) = head.split(|&b| b == b'\n').next() else {
        return Request::Bad;
    };
    let Ok(line) = core::str::from_utf8(line) else {
        return Request::Bad;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Request::Bad;
    };
    if !version.starts_with("HTTP/1.") {
        return Request::Bad;
    }
    let path = target.split('?').next().unwrap_or_default();
    if method == "GET" && path == "/metrics" {
        Request::Metrics
    } else {
        Request::NotFound
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn parses_the_request_line() {
        assert_eq!(
            parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Request::Metrics
        );
        assert_eq!(
            parse(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Request::Metrics
        );
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Request::NotFound);
        assert_eq!(parse(b"POST /metrics HTTP/1.1\r\n\r\n"), Request::NotFound);
        assert_eq!(parse(b"GET /metrics\r\n\r\n"), Request::Bad);
        assert_eq!(parse(b"GET /metrics SMTP/1\r\n\r\n"), Request::Bad);
        assert_eq!(parse(b"\xff\xfe /metrics HTTP/1.1\r\n\r\n"), Request::Bad);
    }

    async fn get(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn serves_metrics_and_404() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::default());
        Metrics::inc(&metrics.messages_stored);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, Arc::clone(&metrics), async {
            let _ = stop_rx.await;
        }));

        let ok = get(addr, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("text/plain"), "{ok}");
        assert!(ok.contains("\r\n\r\n# HELP "), "{ok}");
        assert!(ok.contains("passage_messages_stored_total 1\n"), "{ok}");
        let (head, body) = ok.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );

        let missing = get(addr, b"GET /secret HTTP/1.1\r\n\r\n").await;
        assert!(missing.starts_with("HTTP/1.1 404 "), "{missing}");

        // A head longer than the limit is refused, not buffered: the relay answers 400
        // and closes (the client may see a reset instead, as it sent more than was read).
        let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        huge.resize(MAX_REQUEST_HEAD + 2048, b'a');
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let _ = stream.write_all(&huge).await;
        let mut response = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
        assert!(read.is_ok(), "the connection was not closed");
        if read.unwrap().is_ok() {
            assert!(response.starts_with(b"HTTP/1.1 400 "));
        }
        // The endpoint still serves.
        let ok = get(addr, b"GET /metrics HTTP/1.0\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");

        stop_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap();
    }
}
