//! The ICMP sockets: one surge-ping client per address family, shared by every pinger.
//!
//! Linux offers two kinds: unprivileged ICMP datagram sockets, allowed to the groups in
//! `net.ipv4.ping_group_range`, and raw sockets, which need CAP_NET_RAW. We try the
//! datagram kind first and fall back to raw. The receive buffer is raised because a
//! round answers thousands of echoes on one socket at once, and the default buffer
//! drops about half of them.

use std::io;
use std::net::IpAddr;
use std::os::fd::{BorrowedFd, RawFd};

use socket2::{SockRef, Type};
use surge_ping::{Client, ICMP};

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
}

/// The sockets of both families, opened on first need and then kept.
pub struct Prober {
    receive_buffer_bytes: usize,
    // Declared before `receiver`: the clients go first, then their thread.
    v4: Option<Socket>,
    v6: Option<Socket>,
    receiver: Option<ReceiveThread>,
}

impl Prober {
    /// Opens nothing yet; see [`Prober::open`].
    pub fn new(receive_buffer_bytes: usize) -> Self {
        Self {
            receive_buffer_bytes,
            v4: None,
            v6: None,
            receiver: None,
        }
    }

    /// Opens the family's socket unless it is open already.
    pub fn open(&mut self, family: Family) -> Result<&Socket, ProberError> {
        let slot = match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        };
        let socket = match slot.take() {
            Some(socket) => socket,
            None => {
                let receiver = match self.receiver.take() {
                    Some(receiver) => receiver,
                    None => ReceiveThread::start()
                        .map_err(|source| ProberError::Open { family, source })?,
                };
                // The client spawns its receive task on the runtime it is created in.
                let opened = {
                    let _inside = receiver.runtime.enter();
                    open_socket(family, self.receive_buffer_bytes)
                };
                self.receiver = Some(receiver);
                opened?
            }
        };
        Ok(slot.insert(socket))
    }

    /// The socket that reaches `address`, if its family is open.
    pub fn socket_for(&self, address: IpAddr) -> Option<&Socket> {
        match Family::of(address) {
            Family::V4 => self.v4.as_ref(),
            Family::V6 => self.v6.as_ref(),
        }
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

fn open_socket(family: Family, receive_buffer_bytes: usize) -> Result<Socket, ProberError> {
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
    let granted = raise_receive_buffer(fd, receive_buffer_bytes)
        .map_err(|source| ProberError::Open { family, source })?;
    if kind == SocketKind::Raw {
        // Only a loss of efficiency if it fails: replies are still matched by identifier.
        if let Err(error) = pass_only_replies(fd, family) {
            tracing::debug!("cannot set the {family} ICMP filter: {error}");
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
    })
}

/// Sets the receive buffer and returns what the kernel granted. SO_RCVBUFFORCE goes
/// past `net.core.rmem_max` when we hold CAP_NET_ADMIN; otherwise SO_RCVBUF gets as
/// much as `rmem_max` allows.
#[allow(unsafe_code)]
fn raise_receive_buffer(fd: RawFd, bytes: usize) -> io::Result<usize> {
    // SAFETY: `fd` belongs to a surge-ping client that the caller holds, so it stays
    // open for the whole call; surge-ping exposes its socket only as a raw descriptor.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let socket = SockRef::from(&fd);
    let wanted = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: a plain setsockopt on a descriptor we borrow, with a correctly sized int.
    let forced = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&raw const wanted).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if forced != 0 {
        socket.set_recv_buffer_size(bytes)?;
    }
    socket.recv_buffer_size()
}

/// Lets through a raw socket only what can answer an echo: the reply and the errors
/// that quote a request. Without it the socket also gets every echo request (on
/// loopback, each of our own) and every other ICMP message of the host, which doubles
/// the work in large rounds.
#[allow(unsafe_code)]
fn pass_only_replies(fd: RawFd, family: Family) -> io::Result<()> {
    // <linux/icmp.h> ICMP_FILTER and <linux/icmpv6.h> ICMPV6_FILTER; libc lacks both.
    const ICMP_FILTER: libc::c_int = 1;
    const ICMPV6_FILTER: libc::c_int = 1;
    // A set bit blocks that ICMP type.
    let result = match family {
        Family::V4 => {
            // echo reply 0, destination unreachable 3, time exceeded 11
            let blocked: u32 = !((1 << 0) | (1 << 3) | (1 << 11));
            // SAFETY: setsockopt with a correctly sized u32 on a descriptor the caller holds open.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_RAW,
                    ICMP_FILTER,
                    (&raw const blocked).cast(),
                    std::mem::size_of::<u32>() as libc::socklen_t,
                )
            }
        }
        Family::V6 => {
            // destination unreachable 1, packet too big 2, time exceeded 3, echo reply 129
            let mut blocked = [u32::MAX; 8];
            for passed in [1u8, 2, 3, 129] {
                blocked[usize::from(passed >> 5)] &= !(1u32 << (passed & 31));
            }
            // SAFETY: as above, with the kernel's 256-bit struct icmp6_filter.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_ICMPV6,
                    ICMPV6_FILTER,
                    blocked.as_ptr().cast(),
                    std::mem::size_of_val(&blocked) as libc::socklen_t,
                )
            }
        }
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
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
        let socket = prober.open(Family::V4).unwrap();
        assert!(socket.receive_buffer_bytes >= 1 << 20);
        assert!(prober.socket_for("127.0.0.1".parse().unwrap()).is_some());
        assert!(prober.socket_for("::1".parse().unwrap()).is_none());
    }
}
