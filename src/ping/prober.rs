//! The ICMP sockets: a few surge-ping clients per address family (two per core),
//! shared by every pinger.
//!
//! Linux offers two kinds: unprivileged ICMP datagram sockets, allowed to the groups in
//! `net.ipv4.ping_group_range`, and raw sockets, which need CAP_NET_RAW. We try the
//! datagram kind first and fall back to raw. The receive buffer is raised because a
//! round answers thousands of echoes on one socket at once, and the default buffer
//! drops about half of them.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use socket2::Type;
use surge_ping::{Client, ICMP};
use tokio::sync::Semaphore;

use super::socket_options;

/// The one error an operator sees when neither socket kind is allowed (SPEC §13).
pub const NO_PERMISSION_MESSAGE: &str = "ping is off: this process may not open ICMP sockets \
    (permission denied for both datagram and raw sockets). Give it CAP_NET_RAW \
    (the systemd unit sets AmbientCapabilities=CAP_NET_RAW), or allow its group \
    unprivileged ICMP sockets with `sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`";

#[derive(Debug, thiserror::Error)]
pub enum ProberError {
    #[error("{NO_PERMISSION_MESSAGE}")]
    NoPermission,
    #[error("cannot open an {family} ICMP socket: {source}")]
    Open {
        family: Family,
        #[source]
        source: io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// Which kind of socket a family ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// Unprivileged ICMP datagram socket; the kernel sets the echo identifier.
    Datagram,
    /// Raw socket (CAP_NET_RAW); sees every ICMP packet of the host.
    Raw,
}

/// One open ICMP socket and what we learned opening it.
#[derive(Clone)]
pub struct Socket {
    pub client: Client,
    pub kind: SocketKind,
    /// The receive buffer the kernel granted, in bytes (it doubles what is asked).
    pub receive_buffer_bytes: usize,
    /// One permit per echo awaiting its answer: no more echoes are out than the
    /// receive buffer can hold replies for, so a receiver that falls behind slows the
    /// sending instead of losing replies.
    pub window: Arc<Semaphore>,
}

/// What one queued echo reply costs in the receive buffer: the kernel counts about
/// 870 bytes for a small reply on loopback; the rest is headroom for other ICMP.
const BUFFER_BYTES_PER_REPLY: usize = 1024;

/// Sockets per family for each core, and at most this many in all (see [`Prober`]).
const SOCKETS_PER_CORE: usize = 2;
const MAX_SOCKETS_PER_FAMILY: usize = 8;

/// The sockets of both families, opened on first need and then kept.
///
/// A family gets two sockets per core (up to eight), not one in all: Linux processes a
/// local echo, request and reply, inside the sending socket's lock, so one socket
/// serializes every send of a round on one core (about 10 µs each on a 2-core VM,
/// 1 s for 10,000 targets × 10 echoes). One per core still leaves the receive thread
/// (surge-ping takes the socket's lock for every reply it reads) waiting behind the
/// senders; two per core cut 10,000 targets × 10 echoes from 1.00 to 0.80 s on 2 cores
/// (raw sockets, A/B; datagram ones 1.06 to 0.79 s; bench/REPORT.md). Pinger `i` uses
/// socket `i mod n`; raw sockets, which all see every reply, each keep only their own
/// with a BPF filter, so more sockets cost every reply more filter runs.
pub struct Prober {
    receive_buffer_bytes: usize,
    sockets_per_family: usize,
    // Declared before `receiver`: the clients go first, then their thread.
    v4: Vec<Socket>,
    v6: Vec<Socket>,
    receiver: Option<ReceiveThread>,
}

impl Prober {
    /// Opens nothing yet; see [`Prober::open`].
    pub fn new(receive_buffer_bytes: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            receive_buffer_bytes,
            sockets_per_family: (cores * SOCKETS_PER_CORE).clamp(1, MAX_SOCKETS_PER_FAMILY),
            v4: Vec::new(),
            v6: Vec::new(),
            receiver: None,
        }
    }

    /// Opens the family's sockets unless they are open already.
    pub fn open(&mut self, family: Family) -> Result<&[Socket], ProberError> {
        let open = match family {
            Family::V4 => !self.v4.is_empty(),
            Family::V6 => !self.v6.is_empty(),
        };
        if !open {
            let receiver = match self.receiver.take() {
                Some(receiver) => receiver,
                None => {
                    ReceiveThread::start().map_err(|source| ProberError::Open { family, source })?
                }
            };
            let opened = {
                // A client spawns its receive task on the runtime it is created in.
                let _inside = receiver.runtime.enter();
                let lanes = self.sockets_per_family;
                (0..lanes)
                    .map(|lane| open_socket(family, self.receive_buffer_bytes, lane, lanes))
                    .collect::<Result<Vec<_>, _>>()
            };
            self.receiver = Some(receiver);
            match family {
                Family::V4 => self.v4 = opened?,
                Family::V6 => self.v6 = opened?,
            }
        }
        Ok(self.sockets(family))
    }

    fn sockets(&self, family: Family) -> &[Socket] {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    /// The socket for the pinger with `identifier` to `address`, if its family is open.
    pub fn socket_for(&self, address: IpAddr, identifier: u16) -> Option<&Socket> {
        let sockets = self.sockets(Family::of(address));
        if sockets.is_empty() {
            return None;
        }
        sockets.get(usize::from(identifier) % sockets.len())
    }
}

/// A thread of its own for the sockets' receive tasks. In a large round thousands of
/// per-target tasks become ready at each send time; a receive task queued behind them
/// on the shared runtime lets the socket buffer overflow, and replies are dropped.
struct ReceiveThread {
    runtime: tokio::runtime::Handle,
    /// Dropping it ends the thread.
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl ReceiveThread {
    fn start() -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("icmp-receive".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        Ok(Self {
            runtime: handle,
            _stop: stop,
        })
    }
}

/// Opens socket `lane` of `lanes` for the family.
fn open_socket(
    family: Family,
    receive_buffer_bytes: usize,
    lane: usize,
    lanes: usize,
) -> Result<Socket, ProberError> {
    let kind = match family {
        Family::V4 => ICMP::V4,
        Family::V6 => ICMP::V6,
    };
    // surge-ping tries the hinted type first and the other one second.
    let config = surge_ping::Config::builder()
        .kind(kind)
        .sock_type_hint(Type::DGRAM)
        .build();
    let client = Client::new(&config).map_err(|source| {
        if source.kind() == io::ErrorKind::PermissionDenied {
            ProberError::NoPermission
        } else {
            ProberError::Open { family, source }
        }
    })?;
    let socket = client.get_socket();
    let kind = if socket.get_type() == Type::RAW {
        SocketKind::Raw
    } else {
        SocketKind::Datagram
    };
    let fd = socket.get_native_sock();
    let granted = socket_options::raise_receive_buffer(fd, receive_buffer_bytes)
        .map_err(|source| ProberError::Open { family, source })?;
    if kind == SocketKind::Raw {
        // Only a loss of efficiency if it fails: replies are still matched by identifier.
        if let Err(error) = socket_options::pass_only_replies(fd, family) {
            tracing::debug!("cannot set the {family} ICMP filter: {error}");
        }
        if lanes > 1 {
            // Without it every socket would queue every reply, and the one that does not
            // own a reply would fill up with them: it must not fail silently.
            socket_options::steer_replies(fd, family, lane as u32, lanes as u32)
                .map_err(|source| ProberError::Open { family, source })?;
        }
    }
    if granted < receive_buffer_bytes {
        tracing::warn!(
            "the {family} ICMP receive buffer is {granted} bytes, less than the configured \
             {receive_buffer_bytes}: replies may be dropped in large rounds; raise \
             net.core.rmem_max or give the process CAP_NET_ADMIN"
        );
    }
    tracing::debug!("opened an {family} ICMP {kind:?} socket with a {granted}-byte receive buffer");
    Ok(Socket {
        client,
        kind,
        receive_buffer_bytes: granted,
        window: Arc::new(Semaphore::new(
            (granted / BUFFER_BYTES_PER_REPLY).clamp(1, Semaphore::MAX_PERMITS),
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permission_error_names_the_capability_and_the_sysctl() {
        let message = ProberError::NoPermission.to_string();
        assert!(message.contains("CAP_NET_RAW"), "{message}");
        assert!(message.contains("net.ipv4.ping_group_range"), "{message}");
        assert!(!message.contains('\n'), "one journal line: {message}");
    }

    #[tokio::test]
    async fn opens_an_ipv4_socket_with_a_raised_buffer() {
        // Tests run as root or with a ping_group_range that allows us.
        let mut prober = Prober::new(1 << 20);
        let sockets = prober.open(Family::V4).unwrap();
        assert!(!sockets.is_empty());
        assert!(sockets.iter().all(|s| s.receive_buffer_bytes >= 1 << 20));
        assert!(prober.socket_for("127.0.0.1".parse().unwrap(), 7).is_some());
        assert!(prober.socket_for("::1".parse().unwrap(), 7).is_none());
    }
}
