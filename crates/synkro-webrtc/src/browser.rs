//! Setting up a peer connection through a signaling stream, with the
//! browser's WebRTC API: both roles of the spec, over any byte stream.
//!
//! The [`Transport`](crate::Transport) runs these on `/webrtc-signaling`
//! streams; they are public for other ways of carrying the signaling (and
//! for tests). Whatever the other side sends, they end in a connection or a
//! typed [`Error`], and close the peer connection they made on error.

use std::future::Future;

use asynchronous_codec::Framed;
use futures::channel::mpsc;
use futures::{AsyncRead, AsyncWrite, FutureExt, SinkExt, StreamExt};
use js_sys::Reflect;
use libp2p_webrtc_websys::Connection;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    EventTarget, RtcConfiguration, RtcDataChannel, RtcIceCandidateInit, RtcIceServer, RtcIceTransportPolicy,
    RtcPeerConnection, RtcPeerConnectionIceEvent, RtcPeerConnectionState, RtcSdpType, RtcSessionDescriptionInit,
};

use crate::signaling::{self, Candidate, Signal, SignalError};
use crate::{Config, Error, IcePolicy};

fn js(e: JsValue) -> Error {
    Error::Browser(
        e.as_string()
            .or_else(|| js_sys::JSON::stringify(&e).ok().and_then(|s| s.as_string()))
            .unwrap_or_else(|| format!("{e:?}")),
    )
}

type Signals<S> = Framed<S, signaling::Codec>;

async fn send<S: AsyncWrite + AsyncRead + Unpin>(stream: &mut Signals<S>, signal: Signal) -> Result<(), Error> {
    stream.send(signal.to_message()).await.map_err(|e| Error::Io(e.into()))
}

async fn receive<S: AsyncWrite + AsyncRead + Unpin>(stream: &mut Signals<S>) -> Result<Signal, Error> {
    match stream.next().await {
        Some(Ok(m)) => Ok(Signal::from_message(m)?),
        Some(Err(e)) => Err(Error::Io(e.into())),
        None => Err(Error::Ended),
    }
}

/// The next message, which must be the other side's `ty` (offer or answer).
async fn receive_sdp<S: AsyncWrite + AsyncRead + Unpin>(
    stream: &mut Signals<S>,
    ty: RtcSdpType,
) -> Result<String, Error> {
    match (receive(stream).await?, ty) {
        (Signal::Offer(sdp), RtcSdpType::Offer) | (Signal::Answer(sdp), RtcSdpType::Answer) => Ok(sdp),
        (other, ty) => Err(SignalError::Unexpected {
            expected: if ty == RtcSdpType::Offer {
                "SDP_OFFER"
            } else {
                "SDP_ANSWER"
            },
            got: other.name(),
        }
        .into()),
    }
}

/// A peer connection being set up, and what it reports meanwhile.
struct Peer {
    pc: RtcPeerConnection,
    candidates: mpsc::UnboundedReceiver<String>,
    states: mpsc::UnboundedReceiver<RtcPeerConnectionState>,
    _on_candidate: Closure<dyn FnMut(RtcPeerConnectionIceEvent)>,
    _on_state: Closure<dyn FnMut(web_sys::Event)>,
}

impl Peer {
    fn new(config: &Config) -> Result<Self, Error> {
        let rtc = RtcConfiguration::new();
        let servers = js_sys::Array::new();
        for url in &config.ice_servers {
            let server = RtcIceServer::new();
            server.set_urls(&JsValue::from_str(url));
            servers.push(&server);
        }
        rtc.set_ice_servers(&servers);
        if config.ice_policy == IcePolicy::RelayOnly {
            rtc.set_ice_transport_policy(RtcIceTransportPolicy::Relay);
        }
        let pc = RtcPeerConnection::new_with_configuration(&rtc).map_err(js)?;

        let (found, candidates) = mpsc::unbounded();
        let on_candidate = Closure::<dyn FnMut(_)>::new(move |e: RtcPeerConnectionIceEvent| {
            // The end of gathering (no candidate, or an empty one) is not
            // sent: js-libp2p neither sends nor needs it.
            let Some(c) = e.candidate().filter(|c| !c.candidate().is_empty()) else {
                return;
            };
            if let Some(json) = js_sys::JSON::stringify(&c.to_json()).ok().and_then(|s| s.as_string()) {
                let _ = found.unbounded_send(json);
            }
        });
        pc.set_onicecandidate(Some(on_candidate.as_ref().unchecked_ref()));
        let (changed, states) = mpsc::unbounded();
        let watched = pc.clone();
        let on_state = Closure::<dyn FnMut(_)>::new(move |_: web_sys::Event| {
            let _ = changed.unbounded_send(watched.connection_state());
        });
        pc.set_onconnectionstatechange(Some(on_state.as_ref().unchecked_ref()));
        Ok(Self {
            pc,
            candidates,
            states,
            _on_candidate: on_candidate,
            _on_state: on_state,
        })
    }

    async fn describe(&self, ty: RtcSdpType) -> Result<String, Error> {
        let promise = match ty {
            RtcSdpType::Offer => self.pc.create_offer(),
            _ => self.pc.create_answer(),
        };
        let description = JsFuture::from(promise).await.map_err(js)?;
        Reflect::get(&description, &"sdp".into())
            .ok()
            .and_then(|s| s.as_string())
            .ok_or_else(|| Error::Browser("a session description without its SDP".into()))
    }

    async fn set_local(&self, ty: RtcSdpType, sdp: &str) -> Result<(), Error> {
        let init = RtcSessionDescriptionInit::new(ty);
        init.set_sdp(sdp);
        JsFuture::from(self.pc.set_local_description(&init)).await.map_err(js)?;
        Ok(())
    }

    async fn set_remote(&self, ty: RtcSdpType, sdp: &str) -> Result<(), Error> {
        let init = RtcSessionDescriptionInit::new(ty);
        init.set_sdp(sdp);
        JsFuture::from(self.pc.set_remote_description(&init))
            .await
            .map_err(js)?;
        Ok(())
    }

    async fn add_candidate(&self, c: &Candidate) {
        let init = RtcIceCandidateInit::new(&c.candidate);
        init.set_sdp_mid(c.sdp_mid.as_deref());
        init.set_sdp_m_line_index(c.sdp_m_line_index);
        if let Some(u) = &c.username_fragment {
            // Not in web-sys' RTCIceCandidateInit.
            let _ = Reflect::set(&init, &"usernameFragment".into(), &JsValue::from_str(u));
        }
        // A candidate the browser cannot use is not fatal (js-libp2p logs it).
        if let Err(e) = JsFuture::from(self.pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init))).await {
            tracing::debug!(error = ?e, "remote ICE candidate refused");
        }
    }

    /// Trickle candidates both ways until the connection is up.
    async fn connect<S: AsyncWrite + AsyncRead + Unpin>(&mut self, stream: &mut Signals<S>) -> Result<(), Error> {
        loop {
            if self.pc.connection_state() == RtcPeerConnectionState::Connected {
                return Ok(());
            }
            futures::select! {
                c = self.candidates.next() => if let Some(json) = c {
                    let candidate = serde_json::from_str(&json).map_err(|e| Error::Browser(e.to_string()))?;
                    send(stream, Signal::Candidate(Some(candidate))).await?;
                },
                s = self.states.next() => match s {
                    Some(RtcPeerConnectionState::Failed | RtcPeerConnectionState::Closed) | None => return Err(Error::Failed),
                    Some(_) => {}
                },
                m = receive(stream).fuse() => match m? {
                    Signal::Candidate(Some(c)) => self.add_candidate(&c).await,
                    Signal::Candidate(None) => {}
                    other => return Err(SignalError::Unexpected { expected: "ICE_CANDIDATE", got: other.name() }.into()),
                },
            }
        }
    }

    /// The muxer over this peer connection. Built before the connection is
    /// up, so that no data channel the other side opens early is missed.
    fn muxer(&self) -> Connection {
        Connection::from_peer_connection(self.pc.clone(), gone(self.pc.clone()))
    }

    /// Stop listening to the peer connection (its handlers are about to be
    /// dropped); on failure, close it too.
    fn finish(&self, ok: bool) {
        self.pc.set_onicecandidate(None);
        self.pc.set_onconnectionstatechange(None);
        if !ok {
            self.pc.close();
        }
    }
}

/// Resolves once the peer connection is gone: failed or closed (by us or by
/// the page), or its SCTP association closed (a remote `close()` shows
/// there at once; the connection state follows only when ICE consent runs
/// out, seconds later).
async fn gone(pc: RtcPeerConnection) {
    let (tx, mut rx) = mpsc::unbounded::<()>();
    let on_state = {
        let tx = tx.clone();
        let watched = pc.clone();
        Closure::<dyn FnMut(_)>::new(move |_: web_sys::Event| {
            if matches!(
                watched.connection_state(),
                RtcPeerConnectionState::Failed | RtcPeerConnectionState::Closed
            ) {
                let _ = tx.unbounded_send(());
            }
        })
    };
    let _ = pc.add_event_listener_with_callback("connectionstatechange", on_state.as_ref().unchecked_ref());
    // `RTCPeerConnection.sctp` (not in web-sys): exists once connected.
    let sctp = Reflect::get(&pc, &"sctp".into()).ok().filter(JsValue::is_object);
    let state_of = |t: &JsValue| Reflect::get(t, &"state".into()).ok().and_then(|s| s.as_string());
    let on_sctp = sctp.map(|sctp| {
        let tx = tx.clone();
        let watched = sctp.clone();
        let c = Closure::<dyn FnMut(_)>::new(move |_: web_sys::Event| {
            if state_of(&watched).as_deref() == Some("closed") {
                let _ = tx.unbounded_send(());
            }
        });
        let _ = sctp
            .unchecked_ref::<EventTarget>()
            .add_event_listener_with_callback("statechange", c.as_ref().unchecked_ref());
        c
    });
    // Closed by the page itself: no event tells (the spec fires none
    // on a local `close()`), so look now and then too.
    let dead = || {
        pc.signaling_state() == web_sys::RtcSignalingState::Closed
            || matches!(
                pc.connection_state(),
                RtcPeerConnectionState::Failed | RtcPeerConnectionState::Closed
            )
    };
    while !dead() {
        futures::select! {
            _ = rx.next() => break,
            () = futures_timer::Delay::new(std::time::Duration::from_millis(500)).fuse() => {}
        }
    }
    drop((on_state, on_sctp));
}

/// Run `f` against the configured deadline.
async fn within<T>(config: &Config, f: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    let deadline = futures_timer::Delay::new(config.timeout);
    futures::select! {
        r = f.fuse() => r,
        () = deadline.fuse() => Err(Error::Timeout(config.timeout)),
    }
}

/// The dialer's side (the spec's _A_): offer, read the answer, trickle,
/// until the peer connection is up.
pub async fn dial<S>(stream: S, config: Config) -> Result<Connection, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut stream = Framed::new(stream, signaling::codec());
    let mut peer = Peer::new(&config)?;
    let muxer = peer.muxer();
    // The offer needs a data section; js-libp2p's listener drops "init".
    let init: RtcDataChannel = peer.pc.create_data_channel("init");
    let run = async {
        let offer = peer.describe(RtcSdpType::Offer).await?;
        // The offer goes out before any candidate can (js-libp2p's order).
        send(&mut stream, Signal::Offer(offer.clone())).await?;
        peer.set_local(RtcSdpType::Offer, &offer).await?;
        let answer = receive_sdp(&mut stream, RtcSdpType::Answer).await?;
        peer.set_remote(RtcSdpType::Answer, &answer).await?;
        peer.connect(&mut stream).await
    };
    let result = within(&config, run).await;
    init.close();
    peer.finish(result.is_ok());
    result?;
    let _ = stream.close().await;
    Ok(muxer)
}

/// The listener's side (the spec's _B_): read the offer, answer, trickle,
/// until the peer connection is up.
pub async fn answer<S>(stream: S, config: Config) -> Result<Connection, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut stream = Framed::new(stream, signaling::codec());
    let mut peer = Peer::new(&config)?;
    let muxer = peer.muxer();
    let run = async {
        let offer = receive_sdp(&mut stream, RtcSdpType::Offer).await?;
        peer.set_remote(RtcSdpType::Offer, &offer).await?;
        let answer = peer.describe(RtcSdpType::Answer).await?;
        send(&mut stream, Signal::Answer(answer.clone())).await?;
        peer.set_local(RtcSdpType::Answer, &answer).await?;
        peer.connect(&mut stream).await
    };
    let result = within(&config, run).await;
    peer.finish(result.is_ok());
    result?;
    let _ = stream.close().await;
    Ok(muxer)
}
