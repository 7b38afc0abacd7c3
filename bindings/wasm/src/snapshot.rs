//! Documents as immutable JS values for `handle.doc()`, and Automerge
//! patches in the shape `@automerge/automerge` gives them, so that the
//! wrapper (`js/snapshot.js`) can move a snapshot to the next version by
//! copying only what changed.
//!
//! Maps and lists become frozen plain objects and arrays, each registered
//! in the wrapper's `ids` WeakMap under its Automerge object id (how a
//! change made through a draft names the object it edits); text becomes a
//! string, counters `Counter` objects (made by the wrapper's `counter`
//! function), timestamps `Date`s and bytes `Uint8Array`s.

use std::collections::HashMap;

use js_sys::{Array, Date, Function, Object, Reflect, Uint8Array, WeakMap};
use synkro::automerge::{
    AutoCommit, ChangeHash, ObjId, ObjType, Patch, PatchAction, Prop, ROOT, ReadDoc, ScalarValue, Value, ValueRef,
};
use wasm_bindgen::prelude::*;

/// What the wrapper lends to build values: where object ids go and how
/// to make a counter.
pub struct Cx {
    pub ids: WeakMap,
    pub counter: Function,
}

impl Cx {
    pub fn new(ids: WeakMap, counter: Function) -> Self {
        Self { ids, counter }
    }

    fn scalar(&self, s: &ScalarValue) -> JsValue {
        match s {
            ScalarValue::Str(s) => JsValue::from_str(s),
            ScalarValue::Int(i) => JsValue::from_f64(*i as f64),
            ScalarValue::Uint(u) => JsValue::from_f64(*u as f64),
            ScalarValue::F64(f) => JsValue::from_f64(*f),
            ScalarValue::Counter(c) => {
                let n = JsValue::from_f64(i64::from(c) as f64);
                self.counter.call1(&JsValue::NULL, &n).unwrap_or(n)
            }
            ScalarValue::Timestamp(t) => Date::new(&JsValue::from_f64(*t as f64)).into(),
            ScalarValue::Boolean(b) => JsValue::from_bool(*b),
            ScalarValue::Bytes(b) => Uint8Array::from(b.as_slice()).into(),
            ScalarValue::Null | ScalarValue::Unknown { .. } => JsValue::NULL,
        }
    }

    /// An empty container for a patch that puts one (its content follows
    /// in later patches), registered under its id.
    fn empty(&self, ty: ObjType, id: &ObjId) -> JsValue {
        let v: JsValue = match ty {
            ObjType::Map | ObjType::Table => Object::new().into(),
            ObjType::List => Array::new().into(),
            ObjType::Text => return JsValue::from_str(""),
        };
        self.ids.set(v.unchecked_ref(), &JsValue::from_str(&id.to_string()));
        v
    }

    fn value(&self, v: &Value<'_>, id: &ObjId) -> JsValue {
        match v {
            Value::Object(ty) => self.empty(*ty, id),
            Value::Scalar(s) => self.scalar(s),
        }
    }

    /// The object `id` (of type `ty`) and everything under it, at `heads`
    /// (now if `None`), frozen.
    pub fn materialize(&self, doc: &AutoCommit, ty: ObjType, id: &ObjId, heads: Option<&[ChangeHash]>) -> JsValue {
        self.build(doc, ty, id, heads, &mut Memo::default())
    }

    /// `materialize`, making what repeats once (`Memo`), and object ids
    /// only for objects.
    fn build(
        &self,
        doc: &AutoCommit,
        ty: ObjType,
        id: &ObjId,
        heads: Option<&[ChangeHash]>,
        memo: &mut Memo,
    ) -> JsValue {
        let value = |v: ValueRef<'_>, child: &dyn Fn() -> ObjId, memo: &mut Memo| match v {
            ValueRef::Object(t) => self.build(doc, t, &child(), heads, memo),
            scalar => match Value::from(scalar) {
                Value::Scalar(s) => self.scalar(&s),
                Value::Object(_) => JsValue::NULL,
            },
        };
        let out: JsValue = match ty {
            ObjType::Map | ObjType::Table => {
                let obj = Object::new();
                let put = |key: &str, v: JsValue, memo: &mut Memo| {
                    let _ = Reflect::set(&obj, memo.key(key), &v);
                };
                match heads {
                    None => {
                        for i in doc.map_range(id, ..) {
                            let v = value(i.value.clone(), &|| i.id(), memo);
                            put(&i.key, v, memo);
                        }
                    }
                    Some(h) => {
                        for i in doc.map_range_at(id, .., h) {
                            let v = value(i.value.clone(), &|| i.id(), memo);
                            put(&i.key, v, memo);
                        }
                    }
                }
                obj.into()
            }
            ObjType::List => {
                let arr = Array::new();
                match heads {
                    None => {
                        for i in doc.list_range(id, ..) {
                            arr.push(&value(i.value.clone(), &|| i.id(), memo));
                        }
                    }
                    Some(h) => {
                        for i in doc.list_range_at(id, .., h) {
                            arr.push(&value(i.value.clone(), &|| i.id(), memo));
                        }
                    }
                }
                arr.into()
            }
            ObjType::Text => {
                let text = match heads {
                    None => doc.text(id),
                    Some(h) => doc.text_at(id, h),
                };
                return JsValue::from_str(&text.unwrap_or_default());
            }
        };
        self.ids.set(out.unchecked_ref(), &memo.id(id));
        Object::freeze(out.unchecked_ref());
        out
    }

    /// The whole document at `heads` (now if `None`).
    pub fn root(&self, doc: &AutoCommit, heads: Option<&[ChangeHash]>) -> JsValue {
        self.materialize(doc, ObjType::Map, &ROOT, heads)
    }

    /// One patch as `{action, path, value | values | length}`, with `path`
    /// ending in the key or index it acts on (text indexes in code points;
    /// the wrapper turns them into UTF-16 units).
    pub fn patch(&self, p: &Patch) -> JsValue {
        let path: Array = p.path.iter().map(|(_, pr)| prop(pr)).collect();
        let out = Object::new();
        let set = |k: &str, v: &JsValue| {
            let _ = Reflect::set(&out, &JsValue::from_str(k), v);
        };
        let action = match &p.action {
            PatchAction::PutMap { key, value, .. } => {
                path.push(&JsValue::from_str(key));
                set("value", &self.value(&value.0, &value.1));
                "put"
            }
            PatchAction::PutSeq { index, value, .. } => {
                path.push(&JsValue::from_f64(*index as f64));
                set("value", &self.value(&value.0, &value.1));
                "put"
            }
            PatchAction::Insert { index, values, .. } => {
                path.push(&JsValue::from_f64(*index as f64));
                let list: Array = values.iter().map(|(v, id, _)| self.value(v, id)).collect();
                set("values", &list);
                "insert"
            }
            PatchAction::SpliceText { index, value, .. } => {
                path.push(&JsValue::from_f64(*index as f64));
                set("value", &JsValue::from_str(&value.make_string()));
                "splice"
            }
            PatchAction::Increment { prop: pr, value } => {
                path.push(&prop(pr));
                set("value", &JsValue::from_f64(*value as f64));
                "inc"
            }
            PatchAction::DeleteMap { key } => {
                path.push(&JsValue::from_str(key));
                "del"
            }
            PatchAction::DeleteSeq { index, length } => {
                path.push(&JsValue::from_f64(*index as f64));
                if *length > 1 {
                    set("length", &JsValue::from_f64(*length as f64));
                }
                "del"
            }
            PatchAction::Conflict { prop: pr } => {
                path.push(&prop(pr));
                "conflict"
            }
            PatchAction::Mark { .. } => "mark",
        };
        set("action", &JsValue::from_str(action));
        set("path", &path);
        out.into()
    }
}

fn prop(p: &Prop) -> JsValue {
    match p {
        Prop::Map(k) => JsValue::from_str(k),
        Prop::Seq(i) => JsValue::from_f64(*i as f64),
    }
}

/// What one snapshot makes once: the JS strings of map keys (a list of
/// records repeats the same few) and each actor's hex for object ids.
#[derive(Default)]
struct Memo {
    keys: HashMap<String, JsValue>,
    actors: HashMap<usize, String>,
}

impl Memo {
    fn key(&mut self, key: &str) -> &JsValue {
        if !self.keys.contains_key(key) {
            self.keys.insert(key.to_owned(), JsValue::from_str(key));
        }
        &self.keys[key]
    }

    /// `id` as Automerge writes it (`ctr@actor`).
    fn id(&mut self, id: &ObjId) -> JsValue {
        match id {
            ObjId::Root => JsValue::from_str("_root"),
            ObjId::Id(ctr, actor, index) => {
                let hex = self.actors.entry(*index).or_insert_with(|| actor.to_hex_string());
                JsValue::from_str(&format!("{ctr}@{hex}"))
            }
        }
    }
}
