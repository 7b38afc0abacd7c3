//! Where a repo lives on each platform: a directory on native systems
//! (identity file, lock, document logs), IndexedDB and a Web Lock in
//! browsers.

#[cfg(target_arch = "wasm32")]
pub mod browser;
#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(target_arch = "wasm32")]
pub(crate) mod tabs;

#[cfg(target_arch = "wasm32")]
pub(crate) use browser::BrowserHome;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::Home;
