//! The browser side of the panic fence.
//!
//! Native builds catch a panic inside Automerge and rebuild the document
//! (`synkro_core`'s fence). The browser build cannot: wasm32 aborts on
//! panic, the instance traps part-way through an operation, and nothing in
//! its memory can be trusted again. So the fence here is one level up:
//!
//! - the panic hook runs before the trap: it logs the panic, marks this
//!   instance crashed and tells the JS wrapper (`__onCrash`);
//! - from then on this instance's browser homes refuse every write
//!   (`synkro::home::browser`), so nothing the dead instance still runs (a
//!   timer, a socket callback) can write over what a fresh instance reads;
//! - the wrapper (`js/index.js`) loads a fresh instance of the module and
//!   reopens each repo from IndexedDB, stealing the Web Lock the dead
//!   instance can no longer release.

use std::cell::RefCell;
use std::sync::Once;

use js_sys::Function;
use wasm_bindgen::prelude::*;

thread_local! {
    static LISTENER: RefCell<Option<Function>> = const { RefCell::new(None) };
}

/// Install the panic hook (once per instance).
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            console_error_panic_hook::hook(info);
            synkro::home::browser::mark_crashed();
            let message = info.to_string();
            // `try_with`/`try_borrow`: the hook must not panic itself, even if
            // the panic happened while the listener was being set.
            let _ = LISTENER.try_with(|l| {
                if let Ok(l) = l.try_borrow()
                    && let Some(f) = l.as_ref()
                {
                    let _ = f.call1(&JsValue::NULL, &message.into());
                }
            });
        }));
    });
}

/// Call `listener(message)` when this instance panics, just before it
/// traps. The listener must not call back into the module.
#[wasm_bindgen(js_name = "__onCrash")]
pub fn on_crash(listener: Function) {
    install();
    LISTENER.with(|l| *l.borrow_mut() = Some(listener));
}

/// Mark this instance dead after a trap that was not a panic (out of
/// bounds, stack overflow: no hook ran). Touches nothing but one flag, so
/// it is safe to call into an instance that trapped.
#[wasm_bindgen(js_name = "__markCrashed")]
pub fn mark_crashed() {
    synkro::home::browser::mark_crashed();
}
