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

/// What kind of failure, which picks the JS class.
#[derive(Clone, Copy, Debug)]
pub enum Code {
    /// A bad argument from JavaScript (`InvalidArgumentError`).
    InvalidArgument,
    /// Unknown document, path with nothing there (`NotFoundError`).
    NotFound,
    /// Not allowed by the document's access log (`AccessError`).
    Access,
    /// IndexedDB failed or is full (`StorageError`).
    Storage,
    /// A relay or peer could not be reached (`NetworkError`).
    Network,
    /// Anything else (`SynkroError`).
    Other,
}

impl Code {
    fn as_str(self) -> &'static str {
        match self {
            Code::InvalidArgument => "invalid-argument",
            Code::NotFound => "not-found",
            Code::Access => "access",
            Code::Storage => "storage",
            Code::Network => "network",
            Code::Other => "other",
        }
    }
}

/// Make the JS error object.
pub fn js_error(code: Code, message: impl AsRef<str>) -> JsValue {
    let message = message.as_ref();
    let made = FACTORY.with(|f| {
        f.borrow()
            .as_ref()
            .and_then(|f| f.call2(&JsValue::NULL, &code.as_str().into(), &message.into()).ok())
    });
    made.unwrap_or_else(|| js_sys::Error::new(message).into())
}

/// A bad argument.
pub fn invalid(message: impl AsRef<str>) -> JsValue {
    js_error(Code::InvalidArgument, message)
}

/// Map a facade error to its JS class.
pub fn from_synkro(e: synkro::Error) -> JsValue {
    use synkro::ErrorKind as K;
    let code = match e.kind() {
        K::InvalidArgument => Code::InvalidArgument,
        K::NotFound => Code::NotFound,
        K::Access => Code::Access,
        K::Storage => Code::Storage,
        K::Network => Code::Network,
        _ => Code::Other,
    };
    js_error(code, e.to_string())
}

/// `Result` for exported functions.
pub type JsResult<T> = Result<T, JsValue>;
