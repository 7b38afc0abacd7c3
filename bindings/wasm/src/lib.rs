//! WebAssembly bindings of synkro, published as the npm package `synkro`.
//!
//! The JavaScript API (`js/index.js`, described with every type it passes
//! in `js/index.d.ts`) mirrors
//! the Rust facade: a `Repo` of documents kept in IndexedDB (or memory),
//! `DocHandle`s to read documents as plain JS values and change them by
//! path (maps, lists, collaborative text, counters), change and presence
//! events, share/join/revoke, and relays to sync through.
//!
//! Nothing that JavaScript passes in may panic: a panic in wasm kills the
//! whole instance, so every argument is checked and every failure becomes a
//! thrown `SynkroError` subclass with a message that says what to do.
#![cfg_attr(not(target_arch = "wasm32"), allow(unused))]

#[cfg(target_arch = "wasm32")]
mod crash;
#[cfg(target_arch = "wasm32")]
mod doc;
#[cfg(target_arch = "wasm32")]
mod error;
#[cfg(target_arch = "wasm32")]
mod ops;
#[cfg(target_arch = "wasm32")]
mod patch;
#[cfg(target_arch = "wasm32")]
mod repo;
#[cfg(target_arch = "wasm32")]
mod snapshot;
#[cfg(target_arch = "wasm32")]
mod value;
