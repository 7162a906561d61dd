//! What the daemon hands to the programs it starts.
//!
//! The unit grants `CAP_NET_RAW` as an ambient capability so that the daemon can open raw
//! ICMP sockets. Ambient capabilities pass on through `execve`, so a forward `exec`
//! target would inherit it. The daemon keeps the capability in its own permitted and
//! effective sets and clears only the ambient set, before it starts any thread (each
//! thread has its own, copied when it is created).

/// Clears this thread's ambient capability set; call it before any thread starts.
pub fn keep_ambient_capabilities_from_children() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::clear_ambient_capability_set() {
        // Kernels before 4.3 have no ambient set: nothing to clear.
        if e != rustix::io::Errno::INVAL {
            eprintln!("cannot clear the ambient capability set: {e}");
        }
    }
}
