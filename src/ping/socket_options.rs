//! Socket options surge-ping does not set: a raised receive buffer, an ICMP type
//! filter, and a BPF filter that steers each echo reply to the one socket whose pinger
//! sent it. surge-ping exposes its socket only as a raw descriptor, so this is the
//! one place with `unsafe`. Every function takes a descriptor that the caller's
//! surge-ping client keeps open for the whole call.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};

use socket2::{SockFilter, SockRef};

use super::prober::Family;

/// Borrows a surge-ping socket's descriptor for one call.
///
/// # Safety
/// `fd` must stay open while the result is in use. Callers hold the surge-ping client
/// that owns it, and use the borrow only within their own call.
#[allow(unsafe_code)]
unsafe fn borrow<'a>(fd: RawFd) -> BorrowedFd<'a> {
    // SAFETY: the caller guarantees the descriptor outlives 'a.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Sets the receive buffer and returns what the kernel granted (it doubles the ask).
/// SO_RCVBUFFORCE goes past `net.core.rmem_max` when we hold CAP_NET_ADMIN; otherwise
/// SO_RCVBUF gets as much as `rmem_max` allows.
#[allow(unsafe_code)]
pub fn raise_receive_buffer(fd: RawFd, bytes: usize) -> io::Result<usize> {
    // SAFETY: the caller holds the client that owns `fd`.
    let borrowed = unsafe { borrow(fd) };
    let socket = SockRef::from(&borrowed);
    let wanted = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt on an open descriptor, with a correctly sized int.
    let forced = unsafe {
        libc::setsockopt(
            fd,
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
pub fn pass_only_replies(fd: RawFd, family: Family) -> io::Result<()> {
    // <linux/icmp.h> ICMP_FILTER and <linux/icmpv6.h> ICMPV6_FILTER; libc lacks both.
    const ICMP_FILTER: libc::c_int = 1;
    const ICMPV6_FILTER: libc::c_int = 1;
    // A set bit blocks that ICMP type.
    let result = match family {
        Family::V4 => {
            // echo reply 0, destination unreachable 3, time exceeded 11
            let blocked: u32 = !((1 << 0) | (1 << 3) | (1 << 11));
            // SAFETY: setsockopt on an open descriptor, with a correctly sized u32.
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

/// Every raw ICMP socket gets a copy of every echo reply. With several sockets per
/// family, socket `lane` of `lanes` keeps only the replies whose identifier is
/// `lane` modulo `lanes` (its pingers' identifiers); ICMP errors go to all of them.
#[allow(unsafe_code)]
pub fn steer_replies(fd: RawFd, family: Family, lane: u32, lanes: u32) -> io::Result<()> {
    let program: Vec<SockFilter> = steering_program(family, lane, lanes)
        .iter()
        .map(|i| SockFilter::new(i.code, i.jt, i.jf, i.k))
        .collect();
    // SAFETY: the caller holds the client that owns `fd`.
    let borrowed = unsafe { borrow(fd) };
    SockRef::from(&borrowed).attach_filter(&program)
}

/// The classic BPF program behind [`steer_replies`]. A raw IPv4 socket sees the IP
/// header first; a raw ICMPv6 socket sees the ICMPv6 header.
fn steering_program(family: Family, lane: u32, lanes: u32) -> Vec<libc::sock_filter> {
    // <linux/bpf_common.h>
    const LD: u16 = 0x00;
    const LDX: u16 = 0x01;
    const ALU: u16 = 0x04;
    const JMP: u16 = 0x05;
    const RET: u16 = 0x06;
    const H: u16 = 0x08;
    const B: u16 = 0x10;
    const ABS: u16 = 0x20;
    const IND: u16 = 0x40;
    const MSH: u16 = 0xa0;
    const JEQ: u16 = 0x10;
    const MOD: u16 = 0x90;
    const K: u16 = 0x00;
    const ACCEPT: u32 = 0xffff;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let (header, echo_reply, load_type, load_identifier) = match family {
        // X = IP header length; the ICMP header follows it.
        Family::V4 => (
            vec![op(LDX | B | MSH, 0, 0, 0)],
            0,
            op(LD | B | IND, 0, 0, 0),
            op(LD | H | IND, 0, 0, 4),
        ),
        Family::V6 => (
            vec![],
            129,
            op(LD | B | ABS, 0, 0, 0),
            op(LD | H | ABS, 0, 0, 4),
        ),
    };
    let mut program = header;
    program.extend([
        load_type,
        // Not an echo reply (an error the ICMP filter let through): accept.
        op(JMP | JEQ | K, 0, 4, echo_reply),
        load_identifier,
        op(ALU | MOD | K, 0, 0, lanes),
        // Ours: accept; another socket's: drop.
        op(JMP | JEQ | K, 1, 0, lane),
        op(RET | K, 0, 0, 0),
        op(RET | K, 0, 0, ACCEPT),
    ]);
    program
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the few classic BPF instructions the program uses.
    fn verdict(program: &[libc::sock_filter], packet: &[u8]) -> u32 {
        let byte = |at: u32| u32::from(packet[at as usize]);
        let half = |at: u32| (byte(at) << 8) | byte(at + 1);
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        loop {
            let i = program[pc];
            pc += 1;
            match i.code {
                0xb1 => x = 4 * (byte(i.k) & 0xf),
                0x50 => a = byte(x + i.k),
                0x48 => a = half(x + i.k),
                0x30 => a = byte(i.k),
                0x28 => a = half(i.k),
                0x94 => a %= i.k,
                0x15 => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                0x06 => return i.k,
                other => panic!("unexpected instruction {other:#x}"),
            }
        }
    }

    fn ipv4(icmp_type: u8, identifier: u16) -> Vec<u8> {
        // A 24-byte IPv4 header (IHL 6, one option word), then the ICMP header.
        let mut packet = vec![0x46];
        packet.resize(24, 0);
        packet.extend([icmp_type, 0, 0, 0]);
        packet.extend(identifier.to_be_bytes());
        packet.extend([0, 7]);
        packet
    }

    fn icmpv6(icmp_type: u8, identifier: u16) -> Vec<u8> {
        let mut packet = vec![icmp_type, 0, 0, 0];
        packet.extend(identifier.to_be_bytes());
        packet.extend([0, 7]);
        packet
    }

    #[test]
    fn each_lane_keeps_its_own_replies_and_every_error() {
        for lanes in [2u32, 3] {
            for lane in 0..lanes {
                let v4 = steering_program(Family::V4, lane, lanes);
                let v6 = steering_program(Family::V6, lane, lanes);
                for identifier in [0u16, 1, 2, 5, 40_000, u16::MAX] {
                    let mine = u32::from(identifier) % lanes == lane;
                    assert_eq!(verdict(&v4, &ipv4(0, identifier)) > 0, mine);
                    assert_eq!(verdict(&v6, &icmpv6(129, identifier)) > 0, mine);
                }
                // Errors (unreachable) reach every lane, whatever they quote.
                assert!(verdict(&v4, &ipv4(3, 1)) > 0);
                assert!(verdict(&v6, &icmpv6(1, 1)) > 0);
            }
        }
    }
}
