//! The sans-IO core inside real headless Chromium (wasm-bindgen-test):
//! identities from the browser's randomness, sealing and verifying, and
//! two writers syncing through a blind replica. `scripts/test.sh` runs it
//! with `wasm-bindgen-test-runner`.
#![cfg(target_arch = "wasm32")]

mod common;

use common::{Sim, contains};
use synkro_core::automerge::{ROOT, transaction::Transactable};
use synkro_core::{DeviceIdentity, NodeConfig, Role};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
fn identities_come_from_the_browsers_randomness() {
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let (a, b) = (DeviceIdentity::generate(&mut rng), DeviceIdentity::generate(&mut rng));
    assert_ne!(a.member_id(), b.member_id());
    let sig = a.sign(b"hello");
    assert!(a.member_id().verify(b"hello", &sig).is_ok());
    assert!(b.member_id().verify(b"hello", &sig).is_err());
}

#[wasm_bindgen_test]
fn two_writers_converge_through_a_blind_replica() {
    const MARKER: &str = "browser-plaintext-marker-5e1f";
    let (a, r, b) = (0, 1, 2);
    let mut rng = common::rng(7);
    let mut sim = Sim::new(&mut rng, 3, NodeConfig::default());
    let r_id = sim.id(r);
    let doc = sim.act(a, |n| n.create_doc(&mut rng)).expect("create");
    sim.act(a, |n| n.change(&doc, |d| d.put(ROOT, "from_a", MARKER)))
        .expect("change");
    sim.act(a, |n| n.flush(&mut rng, &doc)).expect("flush");
    sim.act(a, |n| n.grant(&mut rng, &doc, r_id, None, Role::Replicate))
        .expect("grant");
    let token = sim.act(a, |n| n.share(&mut rng, &doc, Role::Write)).expect("share");
    sim.act(b, |n| n.join(&mut rng, &token)).expect("join");
    sim.connect(a, r);
    sim.connect(r, b);
    sim.run_until_quiet(&mut rng);
    sim.act(b, |n| n.change(&doc, |d| d.put(ROOT, "from_b", "hi")))
        .expect("change");
    sim.act(b, |n| n.flush(&mut rng, &doc)).expect("flush");
    sim.run_until_quiet(&mut rng);

    let (ja, jb) = (sim.json(a, &doc).expect("a reads"), sim.json(b, &doc).expect("b reads"));
    assert_eq!(ja, jb);
    assert_eq!(ja["from_b"], "hi");
    assert!(sim.json(r, &doc).is_none(), "the replica cannot read");
    for v in sim.all_values(r) {
        assert!(!contains(v, MARKER.as_bytes()), "the replica stored plaintext");
    }
}

/// WebCrypto's Ed25519 (Chromium's, via `crypto.subtle`) against ours
/// (ed25519-dalek's `verify_strict` in wasm): the verdicts on valid,
/// tampered and edge-case signatures, and the time per verification of
/// each, printed. A peer may verify with WebCrypto only where the two
/// verdicts are the same; the edge cases show where they are not.
#[wasm_bindgen_test]
async fn webcrypto_ed25519_against_ours() {
    use js_sys::wasm_bindgen::JsValue;
    use js_sys::{Array, Object, Reflect, Uint8Array};
    use synkro_core::MemberId;
    use wasm_bindgen_futures::JsFuture;

    let window = web_sys::window().expect("a window");
    let subtle = window.crypto().expect("crypto").subtle();
    let now = || window.performance().expect("performance").now();
    let algorithm = Object::new();
    Reflect::set(&algorithm, &"name".into(), &"Ed25519".into()).unwrap();
    let usages = Array::of1(&"verify".into());

    // WebCrypto's verdict; `None` when it refuses the key itself.
    let webcrypto = async |key: &[u8; 32], msg: &[u8], sig: &[u8; 64]| -> Option<bool> {
        let data = Uint8Array::from(&key[..]);
        let import = subtle
            .import_key_with_object("raw", &data, &algorithm, false, &usages)
            .ok()?;
        let key: web_sys::CryptoKey = JsFuture::from(import).await.ok()?.into();
        let verify = subtle
            .verify_with_object_and_u8_array_and_u8_array(&algorithm, &key, sig, msg)
            .unwrap();
        Some(JsFuture::from(verify).await.unwrap().as_bool().unwrap())
    };
    let ours = |key: &[u8; 32], msg: &[u8], sig: &[u8; 64]| MemberId(*key).verify(msg, sig).is_ok();

    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let id = DeviceIdentity::generate(&mut rng);
    let key = id.member_id().0;
    let msg = b"a sealed chunk's header";
    let sig = id.sign(msg);
    // S + L: the same signature with a non-canonical scalar.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut high_s = sig;
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(high_s[32 + i]) + u16::from(L[i]) + carry;
        high_s[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    // A small-order key (the identity point) and a signature that passes
    // the cofactorless equation for it: R = identity, S = 0.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut weak_sig = [0u8; 64];
    weak_sig[..32].copy_from_slice(&identity);

    /// What is checked, the key, the message, the signature.
    type Case<'a> = (&'a str, [u8; 32], &'a [u8], [u8; 64]);
    let cases: [Case; 4] = [
        ("valid", key, msg, sig),
        ("tampered message", key, b"another header", sig),
        ("non-canonical S (S + L)", key, msg, high_s),
        ("small-order key, R = identity, S = 0", identity, msg, weak_sig),
    ];
    for (what, key, msg, sig) in cases {
        let (theirs, ours) = (webcrypto(&key, msg, &sig).await, ours(&key, msg, &sig));
        wasm_bindgen_test::console_log!("ed25519 {what}: ours {ours}, WebCrypto {theirs:?}");
        if what == "valid" || what == "tampered message" {
            assert_eq!(theirs, Some(ours), "{what}");
        }
    }
    assert!(ours(&key, msg, &sig) && !ours(&key, msg, &high_s) && !ours(&identity, msg, &weak_sig));

    const N: usize = 300;
    let start = now();
    for _ in 0..N {
        assert!(ours(&key, msg, &sig));
    }
    let ours_ms = (now() - start) / N as f64;
    let data = Uint8Array::from(&key[..]);
    let import = subtle
        .import_key_with_object("raw", &data, &algorithm, false, &usages)
        .unwrap();
    let crypto_key: web_sys::CryptoKey = JsFuture::from(import).await.unwrap().into();
    let verify = || {
        JsFuture::from(
            subtle
                .verify_with_object_and_u8_array_and_u8_array(&algorithm, &crypto_key, &sig, msg)
                .unwrap(),
        )
    };
    let start = now();
    for _ in 0..N {
        assert_eq!(verify().await.unwrap(), JsValue::TRUE);
    }
    let awaited_ms = (now() - start) / N as f64;
    let start = now();
    let all: Vec<_> = (0..N).map(|_| verify()).collect();
    for v in all {
        assert_eq!(v.await.unwrap(), JsValue::TRUE);
    }
    let batched_ms = (now() - start) / N as f64;
    wasm_bindgen_test::console_log!(
        "ed25519 verify, ms each: ours (wasm) {ours_ms:.3}; WebCrypto one at a time {awaited_ms:.3}, \
         {N} at once {batched_ms:.3}"
    );
}
