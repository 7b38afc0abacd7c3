//! Errors thrown to JavaScript: instances of the `SynkroError` subclasses
//! that `js/index.js` defines and registers at start-up.

use std::cell::RefCell;

use js_sys::Function;
use wasm_bindgen::prelude::*;

thread_local! {
    static FACTORY: RefCell<Option<Function>> = const { RefCell::new(None) };
}

/// Called once by `index.js`: `(code, message) => new SynkroError subclass`.
#[wasm_bindgen(js_name = "__setErrorFactory")]
pub fn set_error_factory(factory: Function) {
    FACTORY.with(|f| *f.borrow_mut() = Some(factory));
}

/// What kind of failure, which picks the JS class: `InvalidArgumentError`,
/// `NotFoundError`, `AccessError`, `StorageError`, `NetworkError`, or
/// `SynkroError` for anything else (by the kind's name).
pub use synkro::ErrorKind as Code;

/// Make the JS error object.
pub fn js_error(code: Code, message: impl AsRef<str>) -> JsValue {
    let message = message.as_ref();
    let made = FACTORY.with(|f| {
        f.borrow()
            .as_ref()
            .and_then(|f| f.call2(&JsValue::NULL, &code.name().into(), &message.into()).ok())
    });
    made.unwrap_or_else(|| js_sys::Error::new(message).into())
}

/// A bad argument.
pub fn invalid(message: impl AsRef<str>) -> JsValue {
    js_error(Code::InvalidArgument, message)
}

/// Map a facade error to its JS class.
pub fn from_synkro(e: synkro::Error) -> JsValue {
    js_error(e.kind(), e.to_string())
}

/// `Result` for exported functions.
pub type JsResult<T> = Result<T, JsValue>;
