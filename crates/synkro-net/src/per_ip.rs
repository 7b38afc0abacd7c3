//! [`PerIpLimit`]: at most N connections (handshaking or established) from
//! one IP address. `libp2p-connection-limits` caps per peer, but a stranger
//! mints peer ids for free; addresses cost them something.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::{ConnectionClosed, ConnectionEstablished, ListenFailure};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
    dummy,
};

/// Denies inbound connections from an IP that already has `max` of them.
/// Relayed connections (`/p2p-circuit`) are not counted here: the relay
/// that carries them applies its own limits.
pub struct PerIpLimit {
    max: u32,
    counts: HashMap<IpAddr, u32>,
    by_connection: HashMap<ConnectionId, IpAddr>,
}

/// The error inside [`ConnectionDenied`] when [`PerIpLimit`] refuses.
#[derive(Debug, thiserror::Error)]
#[error("{ip} already has {max} connections")]
pub struct TooManyFromIp {
    /// The address.
    pub ip: IpAddr,
    /// The cap.
    pub max: u32,
}

impl PerIpLimit {
    /// A cap of `max` inbound connections per IP address.
    pub fn new(max: u32) -> Self {
        Self {
            max,
            counts: HashMap::new(),
            by_connection: HashMap::new(),
        }
    }

    fn release(&mut self, id: ConnectionId) {
        if let Some(ip) = self.by_connection.remove(&id)
            && let Some(n) = self.counts.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&ip);
            }
        }
    }
}

/// The IP of a direct connection; `None` for relayed ones.
fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    if addr.iter().any(|p| p == Protocol::P2pCircuit) {
        return None;
    }
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

impl NetworkBehaviour for PerIpLimit {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = ip_of(remote_addr) else { return Ok(()) };
        let n = self.counts.entry(ip).or_default();
        if *n >= self.max {
            return Err(ConnectionDenied::new(TooManyFromIp { ip, max: self.max }));
        }
        *n += 1;
        self.by_connection.insert(connection_id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => self.release(connection_id),
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => self.release(connection_id),
            // Counted since it was pending; nothing more to do.
            FromSwarm::ConnectionEstablished(ConnectionEstablished { .. }) => {}
            _ => {}
        }
    }

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_ip_and_releases() {
        let mut limit = PerIpLimit::new(2);
        let local: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let a: Multiaddr = "/ip4/10.0.0.1/tcp/5000".parse().unwrap();
        let b: Multiaddr = "/ip4/10.0.0.2/tcp/5000".parse().unwrap();
        let ids: Vec<ConnectionId> = (0..4).map(|_| ConnectionId::new_unchecked(rand_id())).collect();
        assert!(limit.handle_pending_inbound_connection(ids[0], &local, &a).is_ok());
        assert!(limit.handle_pending_inbound_connection(ids[1], &local, &a).is_ok());
        assert!(limit.handle_pending_inbound_connection(ids[2], &local, &a).is_err());
        assert!(limit.handle_pending_inbound_connection(ids[2], &local, &b).is_ok());
        limit.release(ids[0]);
        assert!(limit.handle_pending_inbound_connection(ids[3], &local, &a).is_ok());
        // Relayed connections are the relay's business.
        let circuit: Multiaddr =
            "/ip4/10.0.0.1/tcp/1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit"
                .parse()
                .unwrap();
        assert_eq!(ip_of(&circuit), None);
    }

    fn rand_id() -> usize {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(1 << 40);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }
}
