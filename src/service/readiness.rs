//! Telling systemd how the service is (`Type=notify`): ready once it listens and has started
//! its loops, reloading while SIGHUP is handled, stopping on SIGTERM. The protocol is one
//! datagram to `$NOTIFY_SOCKET` (sd_notify(3)); without the variable nothing is sent.

use std::os::unix::net::UnixDatagram;

/// What the service tells its supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Ready,
    Reloading,
    Stopping,
}

/// Tells systemd, when it is listening, that the service is in `state`. A failure is logged,
/// not fatal: the service works the same without a supervisor.
pub fn tell(state: State) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let message = match state {
        State::Ready => "READY=1\nSTATUS=gating".to_string(),
        // systemd ≥ 253 (Type=notify-reload) wants the time the reload began.
        State::Reloading => format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()),
        State::Stopping => "STOPPING=1".to_string(),
    };
    if let Err(e) = send(&socket, message.as_bytes()) {
        tracing::warn!(
            "cannot tell systemd ({}) that the service is {state:?}: {e}",
            socket.to_string_lossy()
        );
    }
}

fn send(socket: &std::ffi::OsStr, message: &[u8]) -> std::io::Result<()> {
    let sender = UnixDatagram::unbound()?;
    let bytes = socket.as_encoded_bytes();
    match bytes.strip_prefix(b"@") {
        // An abstract socket (Linux): named by what follows the `@`.
        Some(name) => {
            #[cfg(target_os = "linux")]
            {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                sender.send_to_addr(message, &addr)?;
            }
            #[cfg(not(target_os = "linux"))]
            {
                let _ = name;
                return Err(std::io::Error::other("abstract sockets are Linux's"));
            }
        }
        None => {
            sender.send_to(message, socket)?;
        }
    }
    Ok(())
}

fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}
