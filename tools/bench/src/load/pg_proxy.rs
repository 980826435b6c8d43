//! A counting TCP proxy in front of PostgreSQL: it forwards bytes untouched and reads the
//! protocol's message framing on the way, counting round trips (`ReadyForQuery`, one per `Sync`
//! or simple query), statements parsed (`Parse`) and executed (`Execute`, simple `Query`).
//! <https://www.postgresql.org/docs/current/protocol-flow.html>

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// What crossed the proxy so far.
#[derive(Default)]
pub struct Counters {
    round_trips: AtomicU64,
    parses: AtomicU64,
    executes: AtomicU64,
}

/// A reading of [`Counters`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub round_trips: u64,
    pub parses: u64,
    pub executes: u64,
}

impl Counts {
    pub fn since(self, earlier: Counts) -> Counts {
        Counts {
            round_trips: self.round_trips - earlier.round_trips,
            parses: self.parses - earlier.parses,
            executes: self.executes - earlier.executes,
        }
    }
}

impl Counters {
    pub fn read(&self) -> Counts {
        Counts {
            round_trips: self.round_trips.load(Ordering::Relaxed),
            parses: self.parses.load(Ordering::Relaxed),
            executes: self.executes.load(Ordering::Relaxed),
        }
    }
}

/// Listens on a loopback port and forwards every connection to `upstream`; returns the port's
/// address and the counters.
pub async fn start(upstream: SocketAddr) -> anyhow::Result<(SocketAddr, Arc<Counters>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let counters = Arc::new(Counters::default());
    let shared = counters.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let counters = shared.clone();
            tokio::spawn(async move {
                if let Ok(server) = TcpStream::connect(upstream).await {
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    forward(client, server, counters).await;
                }
            });
        }
    });
    Ok((address, counters))
}

async fn forward(client: TcpStream, server: TcpStream, counters: Arc<Counters>) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let upstream_counters = counters.clone();
    // The client's first message (startup) has no type byte; the server's messages all do.
    let to_server = tokio::spawn(pump(
        client_read,
        server_write,
        Framing::untyped_first(),
        move |kind| match kind {
            b'P' => {
                upstream_counters.parses.fetch_add(1, Ordering::Relaxed);
            }
            b'E' | b'Q' => {
                upstream_counters.executes.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        },
    ));
    let to_client = pump(server_read, client_write, Framing::typed(), move |kind| {
        if kind == b'Z' {
            counters.round_trips.fetch_add(1, Ordering::Relaxed);
        }
    });
    to_client.await;
    to_server.abort();
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut framing: Framing,
    mut on_message: impl FnMut(u8),
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        framing.feed(&buffer[..read], &mut on_message);
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Incremental reader of PostgreSQL message boundaries: `[type u8][length u32, itself
/// included][payload]`.
struct Framing {
    /// The next message has no type byte (the startup message).
    untyped: bool,
    /// Header bytes gathered so far (type and length).
    header: Vec<u8>,
    /// Payload bytes of the current message still to skip.
    remaining: usize,
}

impl Framing {
    fn typed() -> Self {
        Self {
            untyped: false,
            header: Vec::with_capacity(5),
            remaining: 0,
        }
    }

    fn untyped_first() -> Self {
        Self {
            untyped: true,
            ..Self::typed()
        }
    }

    fn feed(&mut self, mut bytes: &[u8], on_message: &mut impl FnMut(u8)) {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let skipped = self.remaining.min(bytes.len());
                self.remaining -= skipped;
                bytes = &bytes[skipped..];
                continue;
            }
            let header_len = if self.untyped { 4 } else { 5 };
            let wanted = header_len - self.header.len();
            let taken = wanted.min(bytes.len());
            self.header.extend_from_slice(&bytes[..taken]);
            bytes = &bytes[taken..];
            if self.header.len() < header_len {
                continue;
            }
            let length_bytes = &self.header[header_len - 4..header_len];
            let length = u32::from_be_bytes([
                length_bytes[0],
                length_bytes[1],
                length_bytes[2],
                length_bytes[3],
            ]) as usize;
            if self.untyped {
                self.untyped = false;
            } else {
                on_message(self.header[0]);
            }
            self.remaining = length.saturating_sub(4);
            self.header.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_split_anywhere_are_each_counted_once() {
        let mut stream = Vec::new();
        for (kind, payload) in [(b'P', &b"abc"[..]), (b'Z', b"I"), (b'E', b"")] {
            stream.push(kind);
            stream.extend_from_slice(&(payload.len() as u32 + 4).to_be_bytes());
            stream.extend_from_slice(payload);
        }
        for split in 0..stream.len() {
            let mut framing = Framing::typed();
            let mut seen = Vec::new();
            framing.feed(&stream[..split], &mut |k| seen.push(k));
            framing.feed(&stream[split..], &mut |k| seen.push(k));
            assert_eq!(seen, b"PZE");
        }
    }
}
