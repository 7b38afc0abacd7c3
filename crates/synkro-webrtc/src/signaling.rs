//! The `/webrtc-signaling/0.0.1` protocol: what the two browsers say to
//! each other over the relayed connection before their direct one exists.
//!
//! Each message is a protobuf `Message { optional Type type = 1; optional
//! string data = 2; }`, prefixed with its length as an unsigned varint (the
//! libp2p WebRTC spec, `webrtc/webrtc.md`). The dialer sends `SDP_OFFER`,
//! the listener answers `SDP_ANSWER`, then both trickle `ICE_CANDIDATE`s
//! (the JSON of `RTCIceCandidate.toJSON()`) until the connection is up.
//!
//! Everything here is plain data, checked before any browser API sees it:
//! the bytes come from the other peer.

use serde::{Deserialize, Serialize};

/// The protocol name, as js-libp2p speaks it.
pub const PROTOCOL: &str = "/webrtc-signaling/0.0.1";

/// The longest message accepted. An SDP with many candidates is a few KiB;
/// js-libp2p allows the same.
pub const MAX_MESSAGE_LEN: usize = 16 * 1024;

/// The wire message, as in the spec.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    /// What `data` holds.
    #[prost(enumeration = "Type", optional, tag = "1")]
    pub r#type: Option<i32>,
    /// The SDP, or the candidate's JSON.
    #[prost(string, optional, tag = "2")]
    pub data: Option<String>,
}

/// `Message.Type` of the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Type {
    /// `RTCSessionDescription.sdp` of an offer.
    SdpOffer = 0,
    /// `RTCSessionDescription.sdp` of an answer.
    SdpAnswer = 1,
    /// `RTCIceCandidate.toJSON()`.
    IceCandidate = 2,
}

/// The length-prefixed framing of [`Message`]s.
pub type Codec = prost_codec::Codec<Message>;

/// A new [`Codec`] with the spec's limits.
pub fn codec() -> Codec {
    prost_codec::Codec::new(MAX_MESSAGE_LEN)
}

/// One ICE candidate, as `RTCIceCandidate.toJSON()` writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// The `candidate:` line (empty: this generation's candidates are done).
    pub candidate: String,
    /// The media stream the candidate belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// Its index among the SDP's `m=` lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u16>,
    /// The ICE username fragment it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// A checked signaling message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    /// The dialer's offer (SDP).
    Offer(String),
    /// The listener's answer (SDP).
    Answer(String),
    /// A trickled candidate; `None` once the sender has gathered them all.
    Candidate(Option<Candidate>),
}

/// Why a signaling message was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignalError {
    /// No `type`, or one the spec does not define.
    #[error("signaling message of unknown type {0:?}")]
    UnknownType(Option<i32>),
    /// An offer or answer without its SDP, or an SDP that is not one.
    #[error("signaling message with a malformed SDP: {0}")]
    BadSdp(&'static str),
    /// A candidate that is not `RTCIceCandidate.toJSON()`.
    #[error("signaling message with a malformed ICE candidate: {0}")]
    BadCandidate(String),
    /// A message the protocol does not allow at this point.
    #[error("unexpected signaling message: expected {expected}, got {got}")]
    Unexpected {
        /// What the protocol wanted.
        expected: &'static str,
        /// What came.
        got: &'static str,
    },
}

impl Signal {
    /// The wire form.
    pub fn to_message(&self) -> Message {
        let (ty, data) = match self {
            Signal::Offer(sdp) => (Type::SdpOffer, sdp.clone()),
            Signal::Answer(sdp) => (Type::SdpAnswer, sdp.clone()),
            // Serializing a struct of strings cannot fail.
            Signal::Candidate(Some(c)) => (Type::IceCandidate, serde_json::to_string(c).unwrap_or_default()),
            // js-libp2p sends the JSON of a null candidate when gathering ends.
            Signal::Candidate(None) => (Type::IceCandidate, "null".to_owned()),
        };
        Message {
            r#type: Some(ty as i32),
            data: Some(data),
        }
    }

    /// Check a message from the other peer.
    pub fn from_message(message: Message) -> Result<Self, SignalError> {
        let ty = message
            .r#type
            .and_then(|t| Type::try_from(t).ok())
            .ok_or(SignalError::UnknownType(message.r#type))?;
        let data = message.data.unwrap_or_default();
        match ty {
            Type::SdpOffer => Ok(Signal::Offer(checked_sdp(data)?)),
            Type::SdpAnswer => Ok(Signal::Answer(checked_sdp(data)?)),
            Type::IceCandidate => candidate(&data).map(Signal::Candidate),
        }
    }

    /// The message's name, for errors.
    pub fn name(&self) -> &'static str {
        match self {
            Signal::Offer(_) => "SDP_OFFER",
            Signal::Answer(_) => "SDP_ANSWER",
            Signal::Candidate(_) => "ICE_CANDIDATE",
        }
    }
}

/// An SDP is text that starts with its version line (RFC 8866); the
/// browser parses the rest and refuses what it does not like.
fn checked_sdp(sdp: String) -> Result<String, SignalError> {
    if sdp.is_empty() {
        return Err(SignalError::BadSdp("it is empty"));
    }
    if !sdp.starts_with("v=0") {
        return Err(SignalError::BadSdp("it does not start with v=0"));
    }
    Ok(sdp)
}

/// `null`, an empty string, or a candidate's JSON. A candidate line is one
/// line: a line break inside would let a peer add lines to our SDP.
fn candidate(data: &str) -> Result<Option<Candidate>, SignalError> {
    let data = data.trim();
    if data.is_empty() || data == "null" {
        return Ok(None);
    }
    let c: Option<Candidate> = serde_json::from_str(data).map_err(|e| SignalError::BadCandidate(e.to_string()))?;
    let Some(c) = c else { return Ok(None) };
    if c.candidate.contains(['\r', '\n']) {
        return Err(SignalError::BadCandidate("a line break inside the candidate".into()));
    }
    if c.candidate.is_empty() {
        return Ok(None);
    }
    if !c.candidate.starts_with("candidate:") {
        return Err(SignalError::BadCandidate("it does not start with candidate:".into()));
    }
    if c.sdp_mid.is_none() && c.sdp_m_line_index.is_none() {
        return Err(SignalError::BadCandidate("neither sdpMid nor sdpMLineIndex".into()));
    }
    Ok(Some(c))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use asynchronous_codec::{BytesMut, Decoder, Encoder};
    use proptest::prelude::*;

    use super::*;

    const SDP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

    fn roundtrip(signal: Signal) -> Signal {
        let mut buf = BytesMut::new();
        codec().encode(signal.to_message(), &mut buf).unwrap();
        let message = codec().decode(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty());
        Signal::from_message(message).unwrap()
    }

    #[test]
    fn every_message_survives_the_wire() {
        let c = Candidate {
            candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
            username_fragment: Some("abcd".into()),
        };
        for s in [
            Signal::Offer(SDP.into()),
            Signal::Answer(SDP.into()),
            Signal::Candidate(Some(c)),
            Signal::Candidate(None),
        ] {
            assert_eq!(roundtrip(s.clone()), s);
        }
    }

    /// The bytes js-libp2p writes: field 1 varint, field 2 string.
    #[test]
    fn reads_the_spec_encoding() {
        let json = r#"{"candidate":"candidate:1 1 udp 1 ::1 9 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":null}"#;
        let mut wire = vec![0x08, 0x02, 0x12, json.len() as u8];
        wire.extend_from_slice(json.as_bytes());
        let mut framed = BytesMut::from(&[wire.len() as u8][..]);
        framed.extend_from_slice(&wire);
        let m = codec().decode(&mut framed).unwrap().unwrap();
        let Signal::Candidate(Some(c)) = Signal::from_message(m).unwrap() else {
            panic!("not a candidate")
        };
        assert_eq!(c.sdp_mid.as_deref(), Some("0"));
        assert_eq!(c.username_fragment, None);
    }

    #[test]
    fn malformed_messages_are_refused() {
        let m = |ty: Option<i32>, data: &str| Message {
            r#type: ty,
            data: Some(data.into()),
        };
        let cases = [
            (m(None, SDP), "unknown type"),
            (m(Some(7), SDP), "unknown type"),
            (m(Some(0), ""), "malformed SDP"),
            (m(Some(1), "hello"), "malformed SDP"),
            (m(Some(2), "{"), "malformed ICE"),
            (m(Some(2), r#"{"candidate":"candidate:1\r\na=evil"}"#), "malformed ICE"),
            (m(Some(2), r#"{"candidate":"a=evil","sdpMid":"0"}"#), "malformed ICE"),
            (
                m(Some(2), r#"{"candidate":"candidate:1 1 udp 1 ::1 9 typ host"}"#),
                "malformed ICE",
            ),
            (m(Some(2), r#"{"candidate":5}"#), "malformed ICE"),
        ];
        for (message, want) in cases {
            let err = Signal::from_message(message.clone()).unwrap_err().to_string();
            assert!(err.contains(want), "{message:?}: {err}");
        }
        // Too long a message is refused before it is buffered.
        let mut buf = BytesMut::new();
        let big = Message {
            r#type: Some(0),
            data: Some("v=0".repeat(MAX_MESSAGE_LEN)),
        };
        prost_codec::Codec::<Message>::new(usize::MAX)
            .encode(big, &mut buf)
            .unwrap();
        buf.truncate(8);
        assert!(codec().decode(&mut buf).is_err());
    }

    proptest! {
        /// Whatever arrives, decoding and checking end in a value or an error.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut buf = BytesMut::from(&bytes[..]);
            let mut codec = codec();
            while let Ok(Some(m)) = codec.decode(&mut buf) {
                let _ = Signal::from_message(m);
            }
        }

        #[test]
        fn arbitrary_candidates_never_panic(data in ".{0,200}") {
            let _ = Signal::from_message(Message { r#type: Some(2), data: Some(data) });
        }
    }
}
