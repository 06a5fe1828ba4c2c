//! The relay's test kit for tests with the real `passage-relay` binary: [`Relay`] starts
//! one on loopback with a configuration file through the shared launcher
//! (`passage_testkit::RelayProcess`), [`Client`]
//! speaks the wire protocol to it directly, from a chosen loopback source address if
//! asked. Every wait is bounded by [`WAIT`].
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use passage_crypto::ENVELOPE_LEN;
use passage_crypto::primitives::{DhPublic, DhSecret};
use passage_testkit::{RelayOptions, RelayProcess, StopSignal};
use passage_transport::{
    BlockStream, ConnectOptions, RelayAddress, TransportMode, connect_address,
};
use passage_wire::{
    AuthKey, AuthRole, ChannelBinding, ClientHello, Command as Cmd, CorrId, ErrorCode,
    FrameDecoder, FrameEncoder, MsgId, NewQueue, QueuePassword, RecipientId, RelayHello, Reply,
    SUPPORTED_VERSIONS, SendMessage, SenderId,
};
use rand::SeedableRng as _;

pub const BIN: &str = env!("CARGO_BIN_EXE_passage-relay");
pub const WAIT: Duration = Duration::from_secs(20);

/// A running `passage-relay serve` (the kit's [`RelayProcess`], with this crate's
/// binary, `--log-level warn` and a `relay.toml`), killed when dropped.
pub struct Relay {
    pub process: RelayProcess,
    pub address: RelayAddress,
    /// The directory holding `relay.toml`, `data/` and the relay's stderr log.
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Relay {
    /// Starts a relay on 127.0.0.1 with `config` in a fresh temporary directory.
    pub fn start(config: &str) -> Relay {
        Self::start_with_fd_limit(config, None)
    }

    /// Starts the relay under a hard file-descriptor limit (set by the shell before
    /// `exec`, so the relay cannot raise it).
    pub fn start_with_fd_limit(config: &str, fd_limit: Option<u32>) -> Relay {
        let temp = tempfile::tempdir().unwrap();
        let mut relay = Self::start_in(temp.path(), config, fd_limit);
        relay._temp = Some(temp);
        relay
    }

    /// Starts a relay whose `relay.toml` and `data/` are in `dir` (which the caller
    /// keeps, to start it again on the same store).
    pub fn start_in(dir: &Path, config: &str, fd_limit: Option<u32>) -> Relay {
        let config_path = dir.join("relay.toml");
        std::fs::write(&config_path, config).unwrap();
        let options = RelayOptions {
            binary: Some(BIN.into()),
            config: Some(config_path),
            log_level: Some("warn".to_owned()),
            fd_limit,
            log: Some(dir.join("relay.stderr.log")),
            ..RelayOptions::default()
        };
        let process = RelayProcess::launch(&dir.join("data"), options)
            .unwrap_or_else(|e| panic!("relay did not start: {e}"));
        Relay {
            address: process.address().clone(),
            process,
            dir: dir.to_path_buf(),
            _temp: None,
        }
    }

    /// Stops the relay with SIGTERM; returns its exit status and standard error.
    pub fn stop(mut self) -> (ExitStatus, String) {
        let status = self
            .process
            .stop(StopSignal::Term)
            .unwrap_or_else(|e| panic!("the relay did not stop in time: {e}"));
        (status, self.process.log())
    }

    /// The relay's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid().expect("the relay runs")
    }

    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }
}

/// Runs `passage-relay ARGS` to its end (bounded); returns status and standard error.
pub fn run_to_end(args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, reader.join().unwrap_or_default());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("passage-relay {args:?} did not end in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A queue a [`Client`] created: its ids and the recipient's key.
pub struct Queue {
    pub recipient_id: RecipientId,
    pub sender_id: SenderId,
    pub auth: DhSecret,
}

/// A minimal well-behaved client speaking the wire protocol directly.
pub struct Client {
    pub stream: BlockStream,
    pub enc: FrameEncoder,
    dec: FrameDecoder,
    relay_key: DhPublic,
    binding: [u8; 32],
    corr: u64,
    rng: rand::rngs::StdRng,
}

impl Client {
    pub async fn connect(relay: &Relay, mode: TransportMode) -> Client {
        Self::connect_from(relay, mode, None).await
    }

    /// Connects to `address` (e.g. one kept from before a key rotation); `None` if the
    /// connection or the hello failed.
    pub async fn connect_to(address: &RelayAddress, mode: TransportMode) -> Option<Client> {
        let mut options = ConnectOptions::default();
        options.mode = mode;
        options.handshake_timeout = Duration::from_secs(5);
        let stream = tokio::time::timeout(WAIT, connect_address(address, &options))
            .await
            .expect("connect in time")
            .ok()?;
        Self::hello(stream).await
    }

    /// Connects from `local` (a loopback address such as 127.0.0.7) if given.
    pub async fn connect_from(relay: &Relay, mode: TransportMode, local: Option<IpAddr>) -> Client {
        Self::try_connect_from(relay, mode, local)
            .await
            .expect("connect")
    }

    /// Connects and exchanges hellos; `None` if the relay refused or closed the
    /// connection first.
    pub async fn try_connect_from(
        relay: &Relay,
        mode: TransportMode,
        local: Option<IpAddr>,
    ) -> Option<Client> {
        let mut options = ConnectOptions::default();
        options.mode = mode;
        options.local_ip = local;
        options.handshake_timeout = Duration::from_secs(5);
        let stream = tokio::time::timeout(WAIT, connect_address(&relay.address, &options))
            .await
            .expect("connect in time")
            .ok()?;
        Self::hello(stream).await
    }

    /// Exchanges hellos on a new stream.
    async fn hello(stream: BlockStream) -> Option<Client> {
        let binding = stream.channel_binding();
        let seed = u64::from_be_bytes(binding[..8].try_into().unwrap());
        let mut client = Client {
            stream,
            enc: FrameEncoder::new(),
            dec: FrameDecoder::new(),
            relay_key: DhPublic::from_bytes([0; 32]),
            binding,
            corr: 0,
            rng: rand::rngs::StdRng::seed_from_u64(seed),
        };
        let hello = RelayHello::decode(&client.frame().await?).unwrap();
        client.relay_key = hello.session_key;
        let version = hello.negotiate(SUPPORTED_VERSIONS).unwrap();
        client.send_frame(&ClientHello::new(version).encode()).await;
        Some(client)
    }

    pub async fn send_frame(&mut self, frame: &[u8]) {
        self.enc.push_frame(frame).unwrap();
        self.enc.flush();
        while let Some(block) = self.enc.poll_block() {
            self.stream.send_block(&block).await.unwrap();
        }
    }

    /// The next frame from the relay, or `None` when it closed the connection.
    pub async fn frame(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(frame) = self.dec.poll_frame() {
                return Some(frame);
            }
            match tokio::time::timeout(WAIT, self.stream.recv_block())
                .await
                .expect("relay answers in time")
            {
                Ok(Some(block)) => self.dec.handle_block(&block).unwrap(),
                _ => return None,
            }
        }
    }

    fn next_corr(&mut self) -> CorrId {
        self.corr += 1;
        CorrId::from_bytes(self.corr.to_be_bytes())
    }

    fn key(&self, role: AuthRole, secret: &DhSecret) -> AuthKey {
        AuthKey::derive(
            role,
            secret,
            &self.relay_key,
            &ChannelBinding::from_bytes(self.binding),
        )
        .unwrap()
    }

    /// Sends `command` and returns the reply with its correlation id (or `None` if the
    /// connection closed first); a `MSG` met on the way is returned instead when
    /// `take_msg`.
    async fn command(
        &mut self,
        command: Cmd,
        key: Option<&AuthKey>,
        take_msg: bool,
    ) -> Option<Reply> {
        let corr = self.next_corr();
        self.send_frame(&command.encode(corr, key).unwrap()).await;
        loop {
            let reply = Reply::decode(&self.frame().await?).unwrap();
            match &reply {
                Reply::Msg(_) if take_msg => return Some(reply),
                r if r.corr_id() == Some(corr) => return Some(reply),
                _ => {}
            }
        }
    }

    pub async fn ping(&mut self) -> bool {
        matches!(
            self.command(Cmd::Ping, None, false).await,
            Some(Reply::Pong { .. })
        )
    }

    /// Creates a queue (with `password` if given): its ids, or the relay's error code.
    pub async fn create_queue(&mut self, password: Option<&[u8]>) -> Result<Queue, ErrorCode> {
        let auth = DhSecret::generate(&mut self.rng);
        let new = Cmd::New(NewQueue {
            recipient_auth_key: auth.public_key(),
            recipient_dh_key: DhSecret::generate(&mut self.rng).public_key(),
            password: password.map(|p| QueuePassword::new(p).unwrap()),
        });
        let key = self.key(AuthRole::Recipient, &auth);
        match self.command(new, Some(&key), false).await {
            Some(Reply::Ids { ids, .. }) => Ok(Queue {
                recipient_id: ids.recipient_id,
                sender_id: ids.sender_id,
                auth,
            }),
            Some(Reply::Err { code, .. }) => Err(code),
            other => panic!("unexpected answer to NEW: {other:?}"),
        }
    }

    /// Whether a queue could be created (no password).
    pub async fn new_queue(&mut self) -> bool {
        self.create_queue(None).await.is_ok()
    }

    /// Sends `body` to the queue `sender_id` as `sender` (naming its key when `first`).
    pub async fn send(
        &mut self,
        sender_id: SenderId,
        sender: &DhSecret,
        first: bool,
        body: u8,
    ) -> Result<(), ErrorCode> {
        let send = Cmd::Send(SendMessage {
            sender_id,
            sender_auth_key: first.then(|| sender.public_key()),
            body: Box::new([body; ENVELOPE_LEN]),
        });
        let key = self.key(AuthRole::Sender, sender);
        match self.command(send, Some(&key), false).await {
            Some(Reply::Ok { .. }) => Ok(()),
            Some(Reply::Err { code, .. }) => Err(code),
            other => panic!("unexpected answer to SEND: {other:?}"),
        }
    }

    /// `GET`: the id of the queue's oldest message, `None` if it has none.
    pub async fn get(&mut self, queue: &Queue) -> Result<Option<MsgId>, ErrorCode> {
        let key = self.key(AuthRole::Recipient, &queue.auth);
        match self
            .command(Cmd::Get(queue.recipient_id), Some(&key), true)
            .await
        {
            Some(Reply::Msg(delivery)) if delivery.recipient_id == queue.recipient_id => {
                Ok(Some(delivery.msg_id))
            }
            Some(Reply::Err {
                code: ErrorCode::NoMsg,
                ..
            }) => Ok(None),
            Some(Reply::Err { code, .. }) => Err(code),
            other => panic!("unexpected answer to GET: {other:?}"),
        }
    }

    /// `ACK` of one message.
    pub async fn ack(&mut self, queue: &Queue, msg_id: MsgId) -> Result<(), ErrorCode> {
        let key = self.key(AuthRole::Recipient, &queue.auth);
        let ack = Cmd::Ack {
            recipient_id: queue.recipient_id,
            msg_id,
        };
        match self.command(ack, Some(&key), false).await {
            Some(Reply::Ok { .. }) => Ok(()),
            Some(Reply::Err { code, .. }) => Err(code),
            other => panic!("unexpected answer to ACK: {other:?}"),
        }
    }

    /// Waits for the relay to close the connection, draining what it sends; returns
    /// the error codes seen on the way.
    pub async fn until_closed(&mut self) -> Vec<ErrorCode> {
        let mut codes = Vec::new();
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            match tokio::time::timeout(WAIT, self.stream.recv_block()).await {
                Ok(Ok(Some(block))) => {
                    if self.dec.handle_block(&block).is_err() {
                        break;
                    }
                    while let Some(frame) = self.dec.poll_frame() {
                        if let Ok(Reply::Err { code, .. }) = Reply::decode(&frame) {
                            codes.push(code);
                        }
                    }
                }
                _ => return codes,
            }
        }
        panic!("the relay did not close the offending connection in time");
    }

    /// The session key the relay sent in its hello (to build raw commands).
    pub fn relay_key(&self) -> DhPublic {
        self.relay_key
    }

    /// The connection's channel binding.
    pub fn binding(&self) -> [u8; 32] {
        self.binding
    }
}

/// A new queue on `relay` holding one message (the first, which fixes the sender key),
/// with the sender's key made from `seed`.
pub fn queue_with_one_message(relay: &Relay, seed: u64) -> (Queue, DhSecret) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let sender = DhSecret::generate(&mut rng);
    let queue = runtime().block_on(async {
        let mut client = Client::connect(relay, TransportMode::Tcp).await;
        let queue = client.create_queue(None).await.unwrap();
        client
            .send(queue.sender_id, &sender, true, 1)
            .await
            .unwrap();
        queue
    });
    (queue, sender)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
