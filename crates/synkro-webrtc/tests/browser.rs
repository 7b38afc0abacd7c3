//! Malformed signaling against a real `RTCPeerConnection`, in headless
//! Chromium (wasm-bindgen-test): every case ends in a typed error, none in
//! a panic, and nothing waits forever.
#![cfg(target_arch = "wasm32")]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use asynchronous_codec::{BytesMut, Encoder};
use futures::io::Cursor;
use futures::{AsyncRead, AsyncWrite};
use synkro_webrtc::signaling::{Message, Signal, SignalError, codec};
use synkro_webrtc::{Config, Error, browser};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// A stream that reads prepared bytes and keeps what is written.
struct Scripted {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Scripted {
    fn new(input: Vec<u8>) -> Self {
        Self {
            input: Cursor::new(input),
            output: Vec::new(),
        }
    }
}

impl AsyncRead for Scripted {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.input).poll_read(cx, buf)
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.output.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn framed(messages: &[Message]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for m in messages {
        codec().encode(m.clone(), &mut buf).unwrap();
    }
    buf.to_vec()
}

fn raw(ty: i32, data: &str) -> Message {
    Message {
        r#type: Some(ty),
        data: Some(data.into()),
    }
}

fn config() -> Config {
    Config {
        timeout: Duration::from_secs(3),
        ..Config::default()
    }
}

/// A real offer from this browser, to get past the first message.
async fn real_offer() -> String {
    use wasm_bindgen_futures::JsFuture;
    let pc = web_sys::RtcPeerConnection::new().unwrap();
    let _channel = pc.create_data_channel("init");
    let offer = JsFuture::from(pc.create_offer()).await.unwrap();
    let sdp = js_sys::Reflect::get(&offer, &"sdp".into())
        .unwrap()
        .as_string()
        .unwrap();
    pc.close();
    sdp
}

#[wasm_bindgen_test]
async fn the_listener_refuses_malformed_signaling() {
    let offer = real_offer().await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("nothing", vec![]),
        ("not a frame", vec![0xff; 12]),
        ("a length over the limit", vec![0xff, 0xff, 0x04]),
        ("an answer first", framed(&[raw(1, "v=0\r\n")])),
        ("an unknown type", framed(&[raw(9, "v=0\r\n")])),
        ("an offer that is no SDP", framed(&[raw(0, "hello")])),
        (
            "an SDP the browser refuses",
            framed(&[raw(0, "v=0\r\nthis is not sdp\r\n")]),
        ),
        (
            "a candidate with a line break",
            framed(&[
                raw(0, &offer),
                raw(2, r#"{"candidate":"candidate:1\r\na=x","sdpMid":"0"}"#),
            ]),
        ),
        ("a second offer", framed(&[raw(0, &offer), raw(0, &offer)])),
        ("an offer, then silence", framed(&[raw(0, &offer)])),
    ];
    for (what, bytes) in cases {
        let result = browser::answer(Scripted::new(bytes), config()).await;
        let err = match result {
            Ok(_) => panic!("{what}: connected"),
            Err(e) => e,
        };
        let fits = match what {
            "nothing" | "an offer, then silence" => matches!(err, Error::Ended),
            "not a frame" | "a length over the limit" => matches!(err, Error::Io(_)),
            "an answer first" | "a second offer" => matches!(err, Error::Signal(SignalError::Unexpected { .. })),
            "an unknown type" => matches!(err, Error::Signal(SignalError::UnknownType(_))),
            "an offer that is no SDP" => matches!(err, Error::Signal(SignalError::BadSdp(_))),
            "an SDP the browser refuses" => matches!(err, Error::Browser(_)),
            "a candidate with a line break" => matches!(err, Error::Signal(SignalError::BadCandidate(_))),
            _ => false,
        };
        assert!(fits, "{what}: {err}");
    }
}

#[wasm_bindgen_test]
async fn the_dialer_refuses_a_malformed_answer_and_gives_up_in_time() {
    for (what, bytes) in [
        ("an offer back", framed(&[raw(0, "v=0\r\n")])),
        ("an answer the browser refuses", framed(&[raw(1, "v=0\r\nnot sdp\r\n")])),
        ("garbage", vec![0x80; 20]),
    ] {
        let err = match browser::dial(Scripted::new(bytes), config()).await {
            Ok(_) => panic!("{what}: connected"),
            Err(e) => e,
        };
        assert!(!matches!(err, Error::Timeout(_)), "{what}: {err}");
    }
    // The dialer writes its offer first, as the spec (and js-libp2p) do.
    let mut seen = Scripted::new(vec![]);
    let _ = browser::dial(&mut seen, config()).await;
    let mut buf = BytesMut::from(&seen.output[..]);
    let first = asynchronous_codec::Decoder::decode(&mut codec(), &mut buf)
        .unwrap()
        .unwrap();
    assert!(matches!(Signal::from_message(first), Ok(Signal::Offer(_))));
}
