//! UDP socket setup for quinn endpoints.

use crate::error::{Error, Result};
use crate::tls::ServerTls;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

/// Requested kernel socket buffer size (the kernel caps it at `net.core.{r,w}mem_max`).
const SOCKET_BUFFER: libc::c_int = 4 << 20;

fn set_buffer(sock: &std::net::UdpSocket, opt: libc::c_int) {
    let v = SOCKET_BUFFER;
    // SAFETY: a valid open socket fd, a pointer to a live c_int and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(opt, error = %std::io::Error::last_os_error(), "could not set socket buffer size");
    }
}

/// Binds a quinn endpoint on `addr` with 4 MiB socket buffers (the quinn
/// guidance: small default buffers drop packets at bulk rates). With
/// `server`, it also accepts connections. Must be called inside a tokio runtime.
pub fn bind_endpoint(addr: SocketAddr, server: Option<&ServerTls>) -> Result<quinn::Endpoint> {
    let sock = std::net::UdpSocket::bind(addr)?;
    set_buffer(&sock, libc::SO_RCVBUF);
    set_buffer(&sock, libc::SO_SNDBUF);
    let runtime = quinn::default_runtime().ok_or_else(|| Error::Io(std::io::Error::other("no async runtime")))?;
    Ok(quinn::Endpoint::new(quinn::EndpointConfig::default(), server.map(|s| s.0.clone()), sock, runtime)?)
}
