//! The UDP side: one flow per client source address, each with its own socket towards
//! the relay (so the relay sees one peer per client, as through a NAT); a delay line
//! per direction releases datagrams at their due time.
//!
//! ```text
//!  client ─► listening socket ─ dice(up) ─► up delay line ─► flow socket ─► relay
//!  client ◄─ listening socket ◄─ down delay line ◄─ dice(down) ◄─ flow socket ◄─ relay
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::counters::{DirectionCells, add};
use super::faults::{DatagramFate, Dice};
use super::{Link, MAX_QUEUED_DATAGRAMS, MAX_UDP_FLOWS, UDP_FLOW_IDLE};

/// The largest datagram read (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;

/// Dice streams of one seed: up, down.
const UP_DICE: u64 = 1;
const DOWN_DICE: u64 = 2;

/// Which way a datagram goes.
#[derive(Debug, Clone, Copy)]
enum Direction {
    Up,
    Down,
}

impl Direction {
    fn cells(self, link: &Link) -> &DirectionCells {
        match self {
            Direction::Up => &link.counters.up,
            Direction::Down => &link.counters.down,
        }
    }
}

/// A datagram waiting for its due time.
struct Due {
    at: Instant,
    socket: Arc<UdpSocket>,
    /// `send_to` this address, or `send` on a connected socket.
    to: Option<SocketAddr>,
    bytes: Arc<[u8]>,
}

/// A [`Due`] ordered by due time, then arrival.
struct Queued {
    at: Instant,
    seq: u64,
    due: Due,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// One client's flow.
struct Flow {
    socket: Arc<UdpSocket>,
    last_up: Instant,
    alive: Arc<AtomicBool>,
}

/// Serves the listening socket until the proxy stops.
pub(crate) async fn serve(listening: UdpSocket, link: Arc<Link>) {
    let listening = Arc::new(listening);
    let (up_tx, up_rx) = mpsc::channel(MAX_QUEUED_DATAGRAMS);
    let (down_tx, down_rx) = mpsc::channel(MAX_QUEUED_DATAGRAMS);
    tokio::spawn(delay_line(up_rx, Arc::clone(&link), Direction::Up));
    tokio::spawn(delay_line(down_rx, Arc::clone(&link), Direction::Down));
    let mut up_dice = Dice::new(link.faults.seed, UP_DICE);
    let down_dice = Arc::new(Mutex::new(Dice::new(link.faults.seed, DOWN_DICE)));
    let mut flows: HashMap<SocketAddr, Flow> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            received = listening.recv_from(&mut buf) => received,
            () = link.stopped() => return,
        };
        // An error here is an ICMP report about an earlier datagram: nothing to do.
        let Ok((len, client)) = received else {
            continue;
        };
        let cells = &link.counters.up;
        add(&cells.datagrams, 1);
        add(&cells.udp_bytes, len as u64);
        if !link.faults.transports.udp || link.is_dark() {
            add(&cells.dropped, 1);
            continue;
        }
        let now = Instant::now();
        if !flows.contains_key(&client) {
            flows.retain(|_, flow| {
                let live = now.duration_since(flow.last_up) < UDP_FLOW_IDLE;
                flow.alive.store(live, Ordering::Relaxed);
                live
            });
            if flows.len() >= MAX_UDP_FLOWS {
                add(&cells.dropped, 1);
                continue;
            }
            let Ok(flow) = open_flow(
                client,
                &listening,
                &link,
                Arc::clone(&down_dice),
                down_tx.clone(),
            )
            .await
            else {
                add(&cells.dropped, 1);
                continue;
            };
            add(&link.counters.udp_flows, 1);
            flows.insert(client, flow);
        }
        let Some(flow) = flows.get_mut(&client) else {
            continue;
        };
        flow.last_up = now;
        let bytes: Arc<[u8]> = Arc::from(buf.get(..len).unwrap_or_default());
        let fate = up_dice.datagram(&link.faults.up);
        schedule(&up_tx, cells, fate, now, &flow.socket, None, bytes);
    }
}

/// Opens a flow's socket towards the relay and starts reading the relay's answers.
async fn open_flow(
    client: SocketAddr,
    listening: &Arc<UdpSocket>,
    link: &Arc<Link>,
    dice: Arc<Mutex<Dice>>,
    down_tx: mpsc::Sender<Due>,
) -> std::io::Result<Flow> {
    let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    socket.connect(link.target).await?;
    let socket = Arc::new(socket);
    let alive = Arc::new(AtomicBool::new(true));
    tokio::spawn(flow_down(
        Arc::clone(&socket),
        client,
        Arc::clone(listening),
        Arc::clone(link),
        dice,
        down_tx,
        Arc::clone(&alive),
    ));
    Ok(Flow {
        socket,
        last_up: Instant::now(),
        alive,
    })
}

/// Reads the relay's datagrams of one flow until the flow is forgotten (checked every
/// [`UDP_FLOW_IDLE`] without traffic) or the proxy stops.
async fn flow_down(
    upstream: Arc<UdpSocket>,
    client: SocketAddr,
    listening: Arc<UdpSocket>,
    link: Arc<Link>,
    dice: Arc<Mutex<Dice>>,
    down_tx: mpsc::Sender<Due>,
    alive: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            received = tokio::time::timeout(UDP_FLOW_IDLE, upstream.recv(&mut buf)) => received,
            () = link.stopped() => return,
        };
        let len = match received {
            Ok(Ok(len)) => len,
            // ICMP "port unreachable" while the relay restarts: keep the flow.
            Ok(Err(_)) => continue,
            Err(_) if alive.load(Ordering::Relaxed) => continue,
            Err(_) => return,
        };
        let cells = &link.counters.down;
        add(&cells.datagrams, 1);
        add(&cells.udp_bytes, len as u64);
        if link.is_dark() {
            add(&cells.dropped, 1);
            continue;
        }
        let fate = match dice.lock() {
            Ok(mut dice) => dice.datagram(&link.faults.down),
            Err(_) => return,
        };
        let bytes: Arc<[u8]> = Arc::from(buf.get(..len).unwrap_or_default());
        let now = Instant::now();
        schedule(&down_tx, cells, fate, now, &listening, Some(client), bytes);
    }
}

/// Puts a datagram's copies (none, one or two) into a delay line.
fn schedule(
    tx: &mpsc::Sender<Due>,
    cells: &DirectionCells,
    fate: DatagramFate,
    now: Instant,
    socket: &Arc<UdpSocket>,
    to: Option<SocketAddr>,
    bytes: Arc<[u8]>,
) {
    let delays = match fate {
        DatagramFate::Dropped => {
            add(&cells.dropped, 1);
            return;
        }
        DatagramFate::Delivered(delay) => [Some(delay), None],
        DatagramFate::Duplicated(first, second) => {
            add(&cells.duplicated, 1);
            [Some(first), Some(second)]
        }
    };
    for delay in delays.into_iter().flatten() {
        let due = Due {
            at: now + delay,
            socket: Arc::clone(socket),
            to,
            bytes: Arc::clone(&bytes),
        };
        if tx.try_send(due).is_err() {
            add(&cells.dropped, 1);
        }
    }
}

/// Releases each datagram at its due time, in due-time order (arrival order among
/// equals); drops what comes due while the link is dark.
async fn delay_line(mut rx: mpsc::Receiver<Due>, link: Arc<Link>, direction: Direction) {
    let mut heap: BinaryHeap<Reverse<Queued>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut open = true;
    while open || !heap.is_empty() {
        let next = heap.peek().map(|Reverse(queued)| queued.at);
        let wait_next = async move {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            due = rx.recv(), if open => match due {
                Some(due) if heap.len() < MAX_QUEUED_DATAGRAMS => {
                    heap.push(Reverse(Queued { at: due.at, seq, due }));
                    seq += 1;
                }
                Some(_) => add(&direction.cells(&link).dropped, 1),
                None => open = false,
            },
            () = wait_next => {
                let now = Instant::now();
                while heap.peek().is_some_and(|Reverse(queued)| queued.at <= now) {
                    let Some(Reverse(queued)) = heap.pop() else { break };
                    if link.is_dark() {
                        add(&direction.cells(&link).dropped, 1);
                        continue;
                    }
                    let due = queued.due;
                    // A send error (the far end gone) is a lost datagram, as on a network.
                    let _ = match due.to {
                        Some(to) => due.socket.send_to(&due.bytes, to).await,
                        None => due.socket.send(&due.bytes).await,
                    };
                }
            }
            () = link.stopped() => return,
        }
    }
}
