//! A `change(fn)`'s edits, recorded by the wrapper's draft (`js/draft.js`)
//! as a list of operations on Automerge objects, applied here in one
//! Automerge change.
//!
//! Each operation names its object by Automerge id, or by a temporary id
//! (`~1`, `~2`…) the draft gave an object created earlier in the same
//! change. Operations: `{k: 'put', obj, prop, value}`, `{k: 'ins', obj,
//! index, values}`, `{k: 'del', obj, prop, count?}`, `{k: 'splice', obj,
//! prop, index, del, text}` and `{k: 'text', obj, prop, text}` on the text
//! at `obj[prop]` (indexes in code points), `{k: 'inc', obj, prop, by}`.
//! Values: `null`, booleans, numbers (integers stay integers), strings
//! (collaborative text), `Uint8Array`s, and tagged objects `{t: 'map' |
//! 'list', id, v}`, `{t: 'str', v}` (a string that is not text), `{t:
//! 'counter', v}`, `{t: 'date', v}` (milliseconds).

use std::collections::HashMap;

use js_sys::{Array, Reflect, Uint8Array};
use synkro::automerge::transaction::Transactable;
use synkro::automerge::{AutoCommit, ObjId, ObjType, Prop, ROOT, ReadDoc, ScalarValue, Value};
use wasm_bindgen::{JsCast, JsValue};

use crate::value::safe_integer;

/// Apply `ops` to `doc` (inside a change).
pub fn apply(doc: &mut AutoCommit, ops: &Array) -> Result<(), String> {
    let mut cx = Apply {
        doc,
        temp: HashMap::new(),
    };
    for op in ops.iter() {
        cx.op(&op)?;
    }
    Ok(())
}

struct Apply<'a> {
    doc: &'a mut AutoCommit,
    temp: HashMap<String, ObjId>,
}

fn field(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED)
}

fn string(o: &JsValue, k: &str) -> Result<String, String> {
    field(o, k)
        .as_string()
        .ok_or_else(|| format!("operation field {k} is not a string"))
}

fn count(o: &JsValue, k: &str) -> Result<usize, String> {
    match field(o, k).as_f64() {
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= u32::MAX as f64 => Ok(n as usize),
        _ => Err(format!("operation field {k} is not a non-negative integer")),
    }
}

fn am(e: synkro::automerge::AutomergeError) -> String {
    e.to_string()
}

impl Apply<'_> {
    fn obj(&self, op: &JsValue) -> Result<ObjId, String> {
        let id = string(op, "obj")?;
        if id.starts_with('~') {
            return self
                .temp
                .get(&id)
                .cloned()
                .ok_or_else(|| format!("unknown object {id}"));
        }
        if id == "_root" {
            return Ok(ROOT);
        }
        self.doc
            .import(&id)
            .map(|(o, _)| o)
            .map_err(|_| format!("object {id} is not in this document"))
    }

    fn prop(&self, op: &JsValue) -> Result<Prop, String> {
        let p = field(op, "prop");
        if let Some(k) = p.as_string() {
            Ok(Prop::Map(k))
        } else {
            Ok(Prop::Seq(count(op, "prop")?))
        }
    }

    /// The text object at `obj[prop]`.
    fn text(&self, op: &JsValue) -> Result<ObjId, String> {
        let (obj, prop) = (self.obj(op)?, self.prop(op)?);
        match self.doc.get(&obj, prop.clone()).map_err(am)? {
            Some((Value::Object(ObjType::Text), id)) => Ok(id),
            _ => Err(format!("{prop} is not a text (make it one by assigning a string)")),
        }
    }

    fn op(&mut self, op: &JsValue) -> Result<(), String> {
        match string(op, "k")?.as_str() {
            "put" => {
                let (obj, prop) = (self.obj(op)?, self.prop(op)?);
                self.put(&obj, prop, &field(op, "value"), false)
            }
            "ins" => {
                let obj = self.obj(op)?;
                let index = count(op, "index")?;
                let values: Array = field(op, "values").dyn_into().map_err(|_| "values is not an array")?;
                for (i, v) in values.iter().enumerate() {
                    self.put(&obj, Prop::Seq(index + i), &v, true)?;
                }
                Ok(())
            }
            "del" => {
                let obj = self.obj(op)?;
                match self.prop(op)? {
                    Prop::Map(k) => self.doc.delete(&obj, k).map_err(am),
                    Prop::Seq(i) => {
                        let n = if field(op, "count").is_undefined() {
                            1
                        } else {
                            count(op, "count")?
                        };
                        let len = self.doc.length(&obj);
                        if i + n > len {
                            return Err(format!("cannot delete {n} items at {i} of a list of {len}"));
                        }
                        self.doc
                            .splice(&obj, i, n as isize, std::iter::empty::<ScalarValue>())
                            .map_err(am)
                    }
                }
            }
            "splice" => {
                let text = self.text(op)?;
                let (index, del) = (count(op, "index")?, count(op, "del")?);
                let len = self.doc.length(&text);
                if index + del > len {
                    return Err(format!("cannot splice {del} characters at {index} of a text of {len}"));
                }
                self.doc
                    .splice_text(&text, index, del as isize, &string(op, "text")?)
                    .map_err(am)
            }
            "text" => {
                let text = self.text(op)?;
                self.doc.update_text(&text, string(op, "text")?).map_err(am)
            }
            "inc" => {
                let (obj, prop) = (self.obj(op)?, self.prop(op)?);
                let by = field(op, "by").as_f64().and_then(safe_integer);
                let by = by.ok_or("increment must be a safe integer")?;
                match self.doc.get(&obj, prop.clone()).map_err(am)? {
                    Some((Value::Scalar(s), _)) if s.is_counter() => {}
                    _ => return Err(format!("{prop} is not a counter (assign new Counter() first)")),
                }
                self.doc.increment(&obj, prop, by).map_err(am)
            }
            other => Err(format!("unknown operation {other:?}")),
        }
    }

    /// Put (or insert, in a list) `v` at `obj[prop]`.
    fn put(&mut self, obj: &ObjId, prop: Prop, v: &JsValue, insert: bool) -> Result<(), String> {
        let created = match self.value(v)? {
            Put::Scalar(s) => {
                match (prop, insert) {
                    (Prop::Seq(i), true) => self.doc.insert(obj, i, s),
                    (p, _) => self.doc.put(obj, p, s),
                }
                .map_err(am)?;
                return Ok(());
            }
            Put::Object(ty) => match (prop, insert) {
                (Prop::Seq(i), true) => self.doc.insert_object(obj, i, ty),
                (p, _) => self.doc.put_object(obj, p, ty),
            }
            .map_err(am)?,
        };
        match created_content(v) {
            Content::Text(s) => self.doc.splice_text(&created, 0, 0, &s).map_err(am)?,
            Content::Map(id, entries) => {
                self.temp.insert(id, created.clone());
                for key in js_sys::Object::keys(entries.unchecked_ref()).iter() {
                    let k = key.as_string().unwrap_or_default();
                    let value = Reflect::get(&entries, &key).unwrap_or(JsValue::UNDEFINED);
                    self.put(&created, Prop::Map(k), &value, false)?;
                }
            }
            Content::List(id, items) => {
                self.temp.insert(id, created.clone());
                for (i, item) in items.iter().enumerate() {
                    self.put(&created, Prop::Seq(i), &item, true)?;
                }
            }
        }
        Ok(())
    }

    fn value(&self, v: &JsValue) -> Result<Put, String> {
        if v.is_null() {
            return Ok(Put::Scalar(ScalarValue::Null));
        }
        if let Some(b) = v.as_bool() {
            return Ok(Put::Scalar(ScalarValue::Boolean(b)));
        }
        if let Some(n) = v.as_f64() {
            return Ok(Put::Scalar(number(n)?));
        }
        if v.is_string() {
            return Ok(Put::Object(ObjType::Text));
        }
        if let Some(bytes) = v.dyn_ref::<Uint8Array>() {
            return Ok(Put::Scalar(ScalarValue::Bytes(bytes.to_vec())));
        }
        let tag = field(v, "t")
            .as_string()
            .ok_or("a value is not JSON, bytes or a tagged object")?;
        let inner = field(v, "v");
        Ok(match tag.as_str() {
            "map" => Put::Object(ObjType::Map),
            "list" => Put::Object(ObjType::List),
            "str" => Put::Scalar(ScalarValue::Str(
                inner.as_string().ok_or("str without a string")?.into(),
            )),
            "counter" => Put::Scalar(ScalarValue::counter(
                safe_integer(inner.as_f64().ok_or("counter without a number")?)
                    .ok_or("a counter must be a safe integer")?,
            )),
            "date" => Put::Scalar(ScalarValue::Timestamp(
                safe_integer(inner.as_f64().ok_or("date without a time")?).ok_or("an invalid date")?,
            )),
            other => return Err(format!("unknown value tag {other:?}")),
        })
    }
}

enum Put {
    Scalar(ScalarValue),
    Object(ObjType),
}

enum Content {
    Text(String),
    Map(String, JsValue),
    List(String, Array),
}

/// What goes into an object just created for `v` (checked by `value`).
fn created_content(v: &JsValue) -> Content {
    if let Some(s) = v.as_string() {
        return Content::Text(s);
    }
    let id = field(v, "id").as_string().unwrap_or_default();
    let inner = field(v, "v");
    match inner.dyn_into::<Array>() {
        Ok(items) => Content::List(id, items),
        Err(entries) => Content::Map(id, entries),
    }
}

fn number(n: f64) -> Result<ScalarValue, String> {
    if !n.is_finite() {
        return Err(format!("{n} cannot be stored (not a finite number)"));
    }
    Ok(match safe_integer(n) {
        Some(i) => ScalarValue::Int(i),
        None => ScalarValue::F64(n),
    })
}
