//! What a case gets: the target, the options, unique names, and the usual steps (connect,
//! subscribe with a receipt, publish) as helpers.

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::Command;

use crate::Options;
use crate::wire::{ALL_SUBPROTOCOLS, Conn, Out, Received, Target};

/// Fails the case with a message unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

/// The context of one case on one target.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub opts: Arc<Options>,
    pub target: Target,
    /// The other node for `cluster.*` cases: the `--peer-url` of the target's transport, or
    /// the target itself (a single broker is a cluster of one).
    pub peer: Target,
    /// Unique per run, case and target; every destination a case uses starts with it.
    pub prefix: String,
}

impl Ctx {
    pub fn new(opts: Arc<Options>, target: Target, peer: Target, prefix: String) -> Ctx {
        Ctx {
            opts,
            target,
            peer,
            prefix,
        }
    }

    /// How long an expected frame or close may take.
    pub fn wait(&self) -> Duration {
        Duration::from_millis(self.opts.timeout_ms)
    }

    /// How long "nothing arrives" is watched for.
    pub fn quiet(&self) -> Duration {
        Duration::from_millis(self.opts.quiet_ms)
    }

    /// A name no other case or run uses.
    pub fn unique(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// `/topic/<unique name>`: one segment, so RabbitMQ accepts it too.
    pub fn topic(&self, name: &str) -> String {
        format!("/topic/{}", self.unique(name))
    }

    /// `/queue/<unique name>`.
    pub fn queue(&self, name: &str) -> String {
        format!("/queue/{}", self.unique(name))
    }

    /// A connection offering every STOMP sub-protocol over WebSocket, without CONNECT.
    pub async fn open(&self) -> Result<Conn, String> {
        Conn::open(&self.target, ALL_SUBPROTOCOLS).await
    }

    /// CONNECT with `accept-version` (when given), `host`, `heart-beat:0,0` and the
    /// configured credentials.
    pub fn connect_frame(&self, accept_version: Option<&str>) -> Out {
        let mut out = Out::new("CONNECT");
        if let Some(versions) = accept_version {
            out = out.h("accept-version", versions);
        }
        out = out.h("host", &self.opts.host).h("heart-beat", "0,0");
        self.with_credentials(out)
    }

    /// Adds `--login`/`--passcode` when given.
    pub fn with_credentials(&self, mut out: Out) -> Out {
        if let Some(login) = &self.opts.login {
            out = out.h("login", login);
        }
        if let Some(passcode) = &self.opts.passcode {
            out = out.h("passcode", passcode);
        }
        out
    }

    /// A STOMP 1.2 session.
    pub async fn connect(&self) -> Result<Conn, String> {
        self.connect_with(self.connect_frame(Some("1.2"))).await
    }

    /// A session that offered these versions.
    pub async fn connect_version(&self, accept_version: &str) -> Result<Conn, String> {
        self.connect_with(self.connect_frame(Some(accept_version)))
            .await
    }

    /// Opens a connection, sends this CONNECT and waits for CONNECTED.
    pub async fn connect_with(&self, connect: Out) -> Result<Conn, String> {
        self.connect_to(&self.target, connect)
            .await
            .map_err(|e| format!("CONNECT: {e}"))
    }

    /// A STOMP 1.2 session on the peer node.
    pub async fn connect_peer(&self) -> Result<Conn, String> {
        self.connect_to(&self.peer, self.connect_frame(Some("1.2")))
            .await
            .map_err(|e| format!("CONNECT to the peer: {e}"))
    }

    /// A session on the peer node authenticated as the `n`th `--user`.
    pub async fn connect_peer_user(&self, n: usize) -> Result<Conn, String> {
        let frame = self.user_connect_frame(n)?;
        self.connect_to(&self.peer, frame)
            .await
            .map_err(|e| format!("CONNECT to the peer: {e}"))
    }

    async fn connect_to(&self, target: &Target, connect: Out) -> Result<Conn, String> {
        let mut conn = Conn::open(target, ALL_SUBPROTOCOLS).await?;
        conn.send_out(&connect).await?;
        conn.expect(Command::Connected, self.wait()).await?;
        Ok(conn)
    }

    /// The `n`th `--user` as (name, password); without `--user`, `--login`/`--passcode` is
    /// user 0.
    pub fn user(&self, n: usize) -> Result<(String, String), String> {
        if self.opts.users.is_empty() && n == 0 {
            if let (Some(login), Some(passcode)) = (&self.opts.login, &self.opts.passcode) {
                return Ok((login.clone(), passcode.clone()));
            }
        }
        let entry = self
            .opts
            .users
            .get(n)
            .ok_or_else(|| format!("needs {} --user NAME:PASSWORD", n + 1))?;
        let (name, password) = entry.split_once(':').ok_or("--user is NAME:PASSWORD")?;
        Ok((name.to_owned(), password.to_owned()))
    }

    /// CONNECT 1.2 as the `n`th `--user` (instead of `--login`).
    pub fn user_connect_frame(&self, n: usize) -> Result<Out, String> {
        let (name, password) = self.user(n)?;
        Ok(Out::new("CONNECT")
            .h("accept-version", "1.2")
            .h("host", &self.opts.host)
            .h("heart-beat", "0,0")
            .h("login", &name)
            .h("passcode", &password))
    }

    /// A session authenticated as the `n`th `--user`.
    pub async fn connect_user(&self, n: usize) -> Result<Conn, String> {
        let frame = self.user_connect_frame(n)?;
        self.connect_with(frame).await
    }

    /// Sends a SEND with a receipt to an unused destination and waits for the RECEIPT;
    /// returns the frames that arrived before it. Everything sent earlier on `conn` has then
    /// been processed.
    pub async fn sync(&self, conn: &mut Conn) -> Result<Vec<Received>, String> {
        let receipt = conn.receipt_id();
        let frame = Out::new("SEND")
            .h("destination", &self.topic("sync"))
            .h("receipt", &receipt);
        conn.send_out(&frame).await?;
        let mut before = Vec::new();
        loop {
            let frame = conn
                .next_frame(self.wait())
                .await
                .map_err(|e| format!("waiting for RECEIPT {receipt}: {e}"))?;
            if frame.command() == Command::Receipt && frame.header("receipt-id") == Some(&receipt) {
                return Ok(before);
            }
            before.push(frame);
        }
    }
}

impl Conn {
    /// SUBSCRIBE `destination` as `id` (auto ack) and wait for its RECEIPT.
    pub async fn subscribe(
        &mut self,
        destination: &str,
        id: &str,
        wait: Duration,
    ) -> Result<(), String> {
        let frame = Out::new("SUBSCRIBE")
            .h("id", id)
            .h("destination", destination);
        self.subscribe_out(frame, wait).await
    }

    /// Sends this SUBSCRIBE (or any frame) with a `receipt` added and waits for the RECEIPT.
    pub async fn subscribe_out(&mut self, frame: Out, wait: Duration) -> Result<(), String> {
        let receipt = self.receipt_id();
        self.send_out(&frame.h("receipt", &receipt)).await?;
        self.expect_receipt(&receipt, wait).await.map(|_| ())
    }

    /// UNSUBSCRIBE `id` and wait for its RECEIPT.
    pub async fn unsubscribe(&mut self, id: &str, wait: Duration) -> Result<(), String> {
        self.subscribe_out(Out::new("UNSUBSCRIBE").h("id", id), wait)
            .await
    }

    /// SEND `body` (UTF-8 text, with `content-length`) to `destination`, no receipt.
    pub async fn publish(&mut self, destination: &str, body: &str) -> Result<(), String> {
        let frame = Out::new("SEND")
            .h("destination", destination)
            .h("content-type", "text/plain")
            .body(body);
        self.send_out(&frame).await
    }

    /// The next frame must be a MESSAGE.
    pub async fn expect_message(&mut self, wait: Duration) -> Result<Received, String> {
        self.expect(Command::Message, wait).await
    }

    /// The next frame must be a MESSAGE with this body.
    pub async fn expect_body(&mut self, body: &str, wait: Duration) -> Result<Received, String> {
        let message = self.expect_message(wait).await?;
        ensure!(
            message.frame.body.as_ref() == body.as_bytes(),
            "expected a MESSAGE with body {body:?}, got {message}"
        );
        Ok(message)
    }
}
