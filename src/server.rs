//! The HTTP connection layer: accepting, serving and closing connections under the limits.

use std::net::SocketAddr;

/// The address of the connection a request came on; the server puts it in every request's
/// extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);
