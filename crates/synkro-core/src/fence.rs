//! The panic fence: Automerge runs on bytes from other devices and on the
//! application's own closures, and a panic inside it must not take the
//! process (or the sync session, or other documents) down with it.
//!
//! [`fenced`] turns a panic into [`CoreError::Panicked`]; the caller then
//! rebuilds the document from the chunks it holds, since a panic may have
//! left Automerge's state half-updated. On `wasm32`, where the browser build
//! aborts on panic, the fence cannot catch anything: there the npm package
//! fences one level up (a fresh instance of the module reopens the repo
//! from IndexedDB; `bindings/wasm/src/crash.rs`).

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::CoreError;

/// Runs `f`; a panic inside it becomes [`CoreError::Panicked`] naming `what`.
pub(crate) fn fenced<T>(what: &'static str, f: impl FnOnce() -> T) -> Result<T, CoreError> {
    // The state `f` touches is rebuilt by every caller after a panic, so
    // observing it half-updated is not a concern.
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        tracing::error!(what, %message, "contained a panic; the document is reloaded from its chunks");
        CoreError::Panicked { what, message }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error() {
        let r: Result<(), _> = fenced("test", || panic!("boom {}", 1));
        match r {
            Err(CoreError::Panicked { what, message }) => {
                assert_eq!(what, "test");
                assert_eq!(message, "boom 1");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(fenced("test", || 7).unwrap(), 7);
    }
}
