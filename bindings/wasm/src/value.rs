//! JavaScript values ⇄ the JSON the facade speaks.

use serde::Serialize;
use serde_json::Value as Json;
use wasm_bindgen::JsValue;

use crate::error::{JsResult, invalid};

/// A JS value as JSON: plain objects, arrays, strings, finite numbers,
/// booleans and null. `undefined`, functions, symbols, `NaN` and cyclic
/// values are refused with an `InvalidArgumentError`.
pub fn from_js(value: JsValue, what: &str) -> JsResult<Json> {
    if value.is_undefined() {
        return Err(invalid(format!(
            "{what} is undefined; pass a JSON-compatible value (null is allowed)"
        )));
    }
    serde_wasm_bindgen::from_value(value).map_err(|e| invalid(format!("{what} is not JSON-compatible: {e}")))
}

/// JSON as a plain JS value (objects, not `Map`s).
pub fn to_js(value: &Json) -> JsValue {
    // Serializing serde_json values to JS cannot fail with this serializer.
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .unwrap_or(JsValue::NULL)
}

/// A non-negative integer index from JS.
pub fn index(value: f64, what: &str) -> JsResult<usize> {
    if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= (u32::MAX as f64) {
        Ok(value as usize)
    } else {
        Err(invalid(format!("{what} must be a non-negative integer, got {value}")))
    }
}

/// `n` as an integer if it is one JavaScript holds exactly (a safe integer).
pub fn safe_integer(n: f64) -> Option<i64> {
    (n.is_finite() && n.fract() == 0.0 && n.abs() <= 2f64.powi(53)).then_some(n as i64)
}
