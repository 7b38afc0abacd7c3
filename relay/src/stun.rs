//! A STUN binding responder (RFC 8489), so that browsers can learn the
//! public address and port their NAT gives them (server-reflexive ICE
//! candidates) from the relay they already trust, for direct
//! browser-to-browser WebRTC.
//!
//! It answers binding requests only, with XOR-MAPPED-ADDRESS and a
//! FINGERPRINT; everything else is dropped unanswered (and counted). It
//! keeps no state per client, and an answer is about as large as the
//! request, so it is a poor amplifier. Messages are parsed by the `stun`
//! crate (webrtc-rs), not by hand.

use std::net::SocketAddr;

use prometheus_client::metrics::counter::Counter;
use stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Message, Setter};
use stun::xoraddr::XorMappedAddress;
use tokio::net::UdpSocket;
use tracing::{debug, info};

/// What the responder counts.
#[derive(Clone, Default)]
pub struct StunMetrics {
    /// Binding requests answered.
    pub answered: Counter,
    /// Datagrams that were not binding requests, dropped.
    pub dropped: Counter,
}

/// The answer to `datagram` from `from`, if it is a binding request.
pub fn answer(datagram: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    let mut request = Message::new();
    request.raw = datagram.to_vec();
    request.decode().ok()?;
    if request.typ != BINDING_REQUEST {
        return None;
    }
    let mut response = Message::new();
    let attrs: [Box<dyn Setter>; 4] = [
        Box::new(request.transaction_id),
        Box::new(BINDING_SUCCESS),
        Box::new(XorMappedAddress {
            ip: from.ip(),
            port: from.port(),
        }),
        Box::new(stun::fingerprint::FINGERPRINT),
    ];
    response.build(&attrs).ok()?;
    Some(response.raw)
}

/// Answer on `socket` until the task is dropped.
pub async fn serve(socket: UdpSocket, metrics: StunMetrics) {
    if let Ok(addr) = socket.local_addr() {
        info!(%addr, "answering STUN binding requests");
    }
    // A STUN message over UDP fits in one datagram; larger ones are not STUN.
    let mut buf = vec![0u8; 1500];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            // ICMP errors from earlier answers surface here on some systems.
            Err(e) => {
                debug!(error = %e, "STUN socket");
                continue;
            }
        };
        match buf.get(..n).and_then(|d| answer(d, from)) {
            Some(reply) => {
                metrics.answered.inc();
                if let Err(e) = socket.send_to(&reply, from).await {
                    debug!(%from, error = %e, "STUN answer not sent");
                }
            }
            None => {
                metrics.dropped.inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use stun::agent::TransactionId;
    use stun::message::Getter;

    use super::*;

    fn request() -> Message {
        let mut m = Message::new();
        let attrs: [Box<dyn Setter>; 3] = [
            Box::new(TransactionId::new()),
            Box::new(BINDING_REQUEST),
            Box::new(stun::fingerprint::FINGERPRINT),
        ];
        m.build(&attrs).unwrap();
        m
    }

    /// A real socket pair over loopback: the answer names the asker's address.
    #[tokio::test]
    async fn answers_binding_requests_with_the_senders_address() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let at = server.local_addr().unwrap();
        let metrics = StunMetrics::default();
        let task = tokio::spawn(serve(server, metrics.clone()));
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();

        // Garbage and a non-request first: dropped without an answer.
        client.send_to(b"\x00\x01hello", at).await.unwrap();
        let mut indication = request();
        indication.typ = stun::message::BINDING_SUCCESS;
        indication.encode();
        client.send_to(&indication.raw, at).await.unwrap();

        let req = request();
        client.send_to(&req.raw, at).await.unwrap();
        let mut buf = [0u8; 1500];
        let (n, from) = tokio::time::timeout(std::time::Duration::from_secs(5), client.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(from, at);
        let mut reply = Message::new();
        reply.raw = buf[..n].to_vec();
        reply.decode().unwrap();
        assert_eq!(reply.typ, BINDING_SUCCESS);
        assert_eq!(reply.transaction_id, req.transaction_id);
        let mut mapped = XorMappedAddress::default();
        mapped.get_from(&reply).unwrap();
        let me = client.local_addr().unwrap();
        assert_eq!((mapped.ip, mapped.port), (me.ip(), me.port()));
        stun::fingerprint::FINGERPRINT.check(&reply).unwrap();
        assert_eq!(metrics.answered.get(), 1);
        assert_eq!(metrics.dropped.get(), 2);
        task.abort();
    }

    #[test]
    fn truncated_and_random_datagrams_get_no_answer() {
        let from: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let req = request().raw;
        for cut in 0..req.len() {
            assert_eq!(answer(&req[..cut], from), None, "cut at {cut}");
        }
        let mut seed = 7u64;
        for _ in 0..2000 {
            let len = (seed % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (seed >> 56) as u8
                })
                .collect();
            let _ = answer(&bytes, from);
        }
        assert!(answer(&req, from).is_some());
    }
}
