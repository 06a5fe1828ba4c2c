//! The TCP side: each accepted connection gets its own connection to the relay and a
//! pump each way (read, delay, pace to the bandwidth, hold while dark, write); the
//! connection is reset at its cut time, if the link cuts.

use std::net::Shutdown;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use super::counters::{DirectionCells, add};
use super::faults::{Dice, DirectionFaults};
use super::{Link, MAX_QUEUED_CHUNKS, MAX_TCP_CONNECTIONS, TCP_CHUNK, TcpSide};

/// The dice stream of the cut times.
const CUT_DICE: u64 = 3;

/// Pause after a failed `accept` (out of file descriptors, say) before the next one.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(20);

/// Accepts connections until the proxy stops.
pub(crate) async fn serve(side: TcpSide, link: Arc<Link>) {
    let listener = match side {
        TcpSide::Listening(listener) => listener,
        TcpSide::Refusing(socket) => {
            // Holds the port (so nothing else takes it) and refuses every connection.
            link.stopped().await;
            drop(socket);
            return;
        }
    };
    let open = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    let mut cut_dice = Dice::new(link.faults.seed, CUT_DICE);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = link.stopped() => return,
        };
        let Ok((client, _)) = accepted else {
            tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            continue;
        };
        add(&link.counters.connections, 1);
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            continue;
        };
        let cut_after = link.faults.cut_after.map(|range| cut_dice.cut_after(range));
        let link = Arc::clone(&link);
        tokio::spawn(async move {
            connection(client, link, cut_after).await;
            drop(permit);
        });
    }
}

/// Carries one connection until both directions end, the cut time, or the stop.
async fn connection(client: TcpStream, link: Arc<Link>, cut_after: Option<Duration>) {
    let accepted = Instant::now();
    let Ok(relay) = TcpStream::connect(link.target).await else {
        reset(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = relay.set_nodelay(true);
    let client = Arc::new(client);
    let relay = Arc::new(relay);
    let up = pump(
        Arc::clone(&client),
        Arc::clone(&relay),
        &link,
        &link.faults.up,
        &link.counters.up,
    );
    let down = pump(
        Arc::clone(&relay),
        Arc::clone(&client),
        &link,
        &link.faults.down,
        &link.counters.down,
    );
    let cut = async {
        match cut_after {
            Some(after) => tokio::time::sleep_until(accepted + after).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        () = cut => {
            add(&link.counters.connections_cut, 1);
            reset(&client);
            reset(&relay);
        }
        () = link.stopped() => {}
    }
}

/// Makes the socket's close a reset (RST), as a cut link gives; it closes when its
/// last handle is dropped.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// A chunk read from one side, due at the other at `at`.
struct Chunk {
    at: Instant,
    bytes: Vec<u8>,
}

/// Moves bytes from `from` to `to` under `faults` until `from` ends (then half-closes
/// `to`) or `to` fails.
async fn pump(
    from: Arc<TcpStream>,
    to: Arc<TcpStream>,
    link: &Link,
    faults: &DirectionFaults,
    cells: &DirectionCells,
) {
    let (tx, mut rx) = mpsc::channel::<Chunk>(MAX_QUEUED_CHUNKS);
    let reader = async move {
        let mut buf = vec![0u8; TCP_CHUNK];
        loop {
            tokio::select! {
                ready = from.readable() => if ready.is_err() { return },
                () = tx.closed() => return,
            }
            let len = match from.try_read(&mut buf) {
                Ok(0) => return,
                Ok(len) => len,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            };
            add(&cells.tcp_bytes, len as u64);
            let chunk = Chunk {
                at: Instant::now() + faults.delay,
                bytes: buf.get(..len).unwrap_or_default().to_vec(),
            };
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    };
    let writer = async move {
        let mut free_at = Instant::now();
        while let Some(chunk) = rx.recv().await {
            tokio::time::sleep_until(chunk.at).await;
            link.light().await;
            let start = free_at.max(Instant::now());
            tokio::time::sleep_until(start).await;
            if write_all(&to, &chunk.bytes).await.is_err() {
                return;
            }
            if let Some(rate) = faults.bytes_per_second {
                free_at =
                    start + Duration::from_secs_f64(chunk.bytes.len() as f64 / rate.get() as f64);
            }
        }
        let _ = socket2::SockRef::from(&*to).shutdown(Shutdown::Write);
    };
    tokio::join!(reader, writer);
}

/// Writes all of `bytes` through a shared stream.
async fn write_all(to: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        to.writable().await?;
        match to.try_write(bytes) {
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
