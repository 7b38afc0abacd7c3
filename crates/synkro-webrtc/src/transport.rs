//! The libp2p [`Transport`](libp2p_core::Transport) for `/webrtc`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use libp2p_core::multiaddr::{Multiaddr, Protocol};
use libp2p_core::transport::{DialOpts, ListenerId, TransportError, TransportEvent};
use libp2p_identity::PeerId;
use libp2p_stream::{Control, IncomingStreams};
use libp2p_webrtc_websys::Connection;
use send_wrapper::SendWrapper;

use crate::signaling::PROTOCOL;
use crate::{Config, Error, browser, dial_target, is_listen_addr};

#[derive(Default)]
struct Slot {
    control: Option<Control>,
    waker: Option<Waker>,
}

fn lock(slot: &Mutex<Slot>) -> MutexGuard<'_, Slot> {
    // An Option and a waker: still consistent after a panic elsewhere.
    slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Gives the [`Transport`] the stream control it signals with, once the
/// swarm (and its `libp2p_stream::Behaviour`) exists.
#[derive(Clone)]
pub struct Handle(Arc<Mutex<Slot>>);

impl Handle {
    /// Start dialing and accepting with `control`.
    pub fn attach(&self, control: Control) {
        let mut slot = lock(&self.0);
        slot.control = Some(control);
        if let Some(w) = slot.waker.take() {
            w.wake();
        }
    }
}

type Upgrade = BoxFuture<'static, Result<(PeerId, Connection), Error>>;

/// Browser-to-browser WebRTC: dials `…/p2p-circuit/webrtc/p2p/<peer>`,
/// accepts on `/webrtc` listeners. See the [crate docs](crate).
pub struct Transport {
    config: Config,
    slot: Arc<Mutex<Slot>>,
    /// Listeners, oldest first; the oldest takes incoming connections.
    listeners: Vec<ListenerId>,
    incoming: Option<IncomingStreams>,
    events: VecDeque<TransportEvent<Upgrade, Error>>,
}

impl Transport {
    /// A transport and the handle that attaches it to its swarm.
    pub fn new(config: Config) -> (Self, Handle) {
        let slot = Arc::new(Mutex::new(Slot::default()));
        (
            Self {
                config,
                slot: slot.clone(),
                listeners: Vec::new(),
                incoming: None,
                events: VecDeque::new(),
            },
            Handle(slot),
        )
    }
}

impl libp2p_core::Transport for Transport {
    type Output = (PeerId, Connection);
    type Error = Error;
    type ListenerUpgrade = Upgrade;
    type Dial = Upgrade;

    fn listen_on(&mut self, id: ListenerId, addr: Multiaddr) -> Result<(), TransportError<Error>> {
        if !is_listen_addr(&addr) {
            return Err(TransportError::MultiaddrNotSupported(addr));
        }
        self.listeners.push(id);
        // `<relay>/p2p-circuit/webrtc` is an address others can dial (the
        // swarm appends our id); a bare `/webrtc` is not.
        if addr.iter().any(|p| p == Protocol::P2pCircuit) {
            self.events.push_back(TransportEvent::NewAddress {
                listener_id: id,
                listen_addr: addr,
            });
        }
        if let Some(w) = lock(&self.slot).waker.take() {
            w.wake();
        }
        Ok(())
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        let before = self.listeners.len();
        self.listeners.retain(|l| *l != id);
        if self.listeners.is_empty() {
            // Stop accepting: the protocol is no longer offered.
            self.incoming = None;
        }
        let removed = self.listeners.len() < before;
        if removed {
            self.events.push_back(TransportEvent::ListenerClosed {
                listener_id: id,
                reason: Ok(()),
            });
        }
        removed
    }

    fn dial(&mut self, addr: Multiaddr, opts: DialOpts) -> Result<Upgrade, TransportError<Error>> {
        // Only the spec's dialer role: no hole-punch style simultaneous open.
        if opts.role.is_listener() {
            return Err(TransportError::MultiaddrNotSupported(addr));
        }
        let Some(peer) = dial_target(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        let Some(mut control) = lock(&self.slot).control.clone() else {
            return Err(TransportError::Other(Error::NotAttached));
        };
        let config = self.config.clone();
        tracing::debug!(%peer, "dialing browser-to-browser WebRTC");
        Ok(SendWrapper::new(async move {
            let stream = control
                .open_stream(peer, PROTOCOL_NAME)
                .await
                .map_err(|e| Error::Open(e.to_string()))?;
            let connection = browser::dial(stream, config).await?;
            tracing::info!(%peer, "direct WebRTC connection up (dialer)");
            Ok((peer, connection))
        })
        .boxed())
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<TransportEvent<Upgrade, Error>> {
        if let Some(e) = self.events.pop_front() {
            return Poll::Ready(e);
        }
        if self.incoming.is_none() && !self.listeners.is_empty() {
            let mut slot = lock(&self.slot);
            match slot.control.as_mut().map(|c| c.accept(PROTOCOL_NAME)) {
                Some(Ok(incoming)) => {
                    drop(slot);
                    self.incoming = Some(incoming);
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "cannot accept browser-to-browser signaling");
                    return Poll::Pending;
                }
                None => {
                    slot.waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        } else if self.listeners.is_empty() {
            lock(&self.slot).waker = Some(cx.waker().clone());
        }
        let Some(incoming) = self.incoming.as_mut() else {
            return Poll::Pending;
        };
        match incoming.poll_next_unpin(cx) {
            Poll::Ready(Some((peer, stream))) => {
                // Not empty: `incoming` is dropped with the last listener.
                let Some(&listener_id) = self.listeners.first() else {
                    drop(stream);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                };
                let config = self.config.clone();
                tracing::debug!(%peer, "answering browser-to-browser WebRTC");
                let upgrade = SendWrapper::new(async move {
                    let connection = browser::answer(stream, config).await?;
                    tracing::info!(%peer, "direct WebRTC connection up (listener)");
                    Ok((peer, connection))
                })
                .boxed();
                Poll::Ready(TransportEvent::Incoming {
                    listener_id,
                    upgrade,
                    local_addr: Multiaddr::empty().with(Protocol::WebRTC),
                    send_back_addr: Multiaddr::empty().with(Protocol::WebRTC).with(Protocol::P2p(peer)),
                })
            }
            // libp2p-stream ended the registration: the swarm is gone.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

const PROTOCOL_NAME: libp2p_swarm::StreamProtocol = libp2p_swarm::StreamProtocol::new(PROTOCOL);
