//! Reading and writing documents as JSON, addressed by slash paths.
//!
//! A path like `meta/title` or `todos/0/done` walks from the root: segments
//! are map keys, except that a numeric segment indexes a list. Setting a
//! value creates missing intermediate maps.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use serde_json::{Map, Number, Value as Json};
use synkro_core::automerge;

use crate::Error;

/// A parsed document path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocPath {
    text: String,
    segments: Vec<String>,
}

impl DocPath {
    /// Parse `a/b/0`. The empty string (or `/`) is the root.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let trimmed = text.trim_matches('/');
        let segments: Vec<String> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').map(str::to_owned).collect()
        };
        if segments.iter().any(String::is_empty) {
            return Err(path_err(text, "empty segment (two slashes in a row)"));
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    /// Is this the root?
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }
}

fn path_err(path: &str, reason: impl Into<String>) -> Error {
    Error::Path {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

enum Parent {
    Map(ObjId),
    List(ObjId, usize),
}

fn index_of(seg: &str) -> Option<usize> {
    seg.parse::<usize>().ok()
}

/// Walk to the object named by `segments`, optionally creating maps.
fn walk(doc: &mut AutoCommit, path: &DocPath, segments: &[String], create: bool) -> Result<ObjId, Error> {
    let mut obj = ROOT;
    for seg in segments {
        let ty = doc.object_type(&obj).map_err(|e| path_err(&path.text, e.to_string()))?;
        let next = match ty {
            ObjType::Map | ObjType::Table => match doc
                .get(&obj, seg.as_str())
                .map_err(|e| path_err(&path.text, e.to_string()))?
            {
                Some((Value::Object(_), id)) => id,
                Some(_) => return Err(path_err(&path.text, format!("{seg:?} is not a map or list"))),
                None if create => doc
                    .put_object(&obj, seg.as_str(), ObjType::Map)
                    .map_err(|e| path_err(&path.text, e.to_string()))?,
                None => return Err(path_err(&path.text, format!("no {seg:?} here"))),
            },
            ObjType::List | ObjType::Text => {
                let i = index_of(seg).ok_or_else(|| path_err(&path.text, format!("{seg:?} is not a list index")))?;
                match doc.get(&obj, i).map_err(|e| path_err(&path.text, e.to_string()))? {
                    Some((Value::Object(_), id)) => id,
                    Some(_) => return Err(path_err(&path.text, format!("item {i} is not a map or list"))),
                    None => return Err(path_err(&path.text, format!("index {i} is past the end of the list"))),
                }
            }
        };
        obj = next;
    }
    Ok(obj)
}

fn parent_of(doc: &mut AutoCommit, path: &DocPath, create: bool) -> Result<(Parent, String), Error> {
    let (last, init) = path
        .segments
        .split_last()
        .ok_or_else(|| path_err(&path.text, "the root has no parent"))?;
    let obj = walk(doc, path, init, create)?;
    let ty = doc.object_type(&obj).map_err(|e| path_err(&path.text, e.to_string()))?;
    match ty {
        ObjType::Map | ObjType::Table => Ok((Parent::Map(obj), last.clone())),
        ObjType::List => {
            let i = index_of(last).ok_or_else(|| path_err(&path.text, format!("{last:?} is not a list index")))?;
            Ok((Parent::List(obj, i), last.clone()))
        }
        ObjType::Text => Err(path_err(&path.text, "cannot address inside text")),
    }
}

/// The value at `path` as JSON (`None` if absent).
pub fn get(doc: &AutoCommit, path: &DocPath) -> Result<Option<Json>, Error> {
    let mut obj = ROOT;
    let mut value: Option<(Value<'_>, ObjId)> = Some((Value::Object(ObjType::Map), ROOT));
    for seg in &path.segments {
        let ty = doc.object_type(&obj).map_err(|e| path_err(&path.text, e.to_string()))?;
        value = match ty {
            ObjType::Map | ObjType::Table => doc.get(&obj, seg.as_str()),
            ObjType::List | ObjType::Text => match index_of(seg) {
                Some(i) => doc.get(&obj, i),
                None => return Err(path_err(&path.text, format!("{seg:?} is not a list index"))),
            },
        }
        .map_err(|e| path_err(&path.text, e.to_string()))?;
        match &value {
            Some((Value::Object(_), id)) => obj = id.clone(),
            Some(_) => {}
            None => return Ok(None),
        }
        if !matches!(value, Some((Value::Object(_), _))) && seg != path.segments.last().unwrap_or(seg) {
            return Err(path_err(&path.text, format!("{seg:?} is not a map or list")));
        }
    }
    Ok(value.map(|(v, id)| to_json(doc, &v, &id)))
}

/// The whole document as JSON.
pub fn whole(doc: &AutoCommit) -> Json {
    to_json(doc, &Value::Object(ObjType::Map), &ROOT)
}

fn to_json(doc: &AutoCommit, value: &Value<'_>, id: &ObjId) -> Json {
    match value {
        Value::Object(ObjType::Map | ObjType::Table) => {
            let mut m = Map::new();
            for item in doc.map_range(id, ..) {
                m.insert(
                    item.key.to_string(),
                    to_json(doc, &Value::from(item.value.clone()), &item.id()),
                );
            }
            Json::Object(m)
        }
        Value::Object(ObjType::List) => Json::Array(
            doc.list_range(id, ..)
                .map(|item| to_json(doc, &Value::from(item.value.clone()), &item.id()))
                .collect(),
        ),
        Value::Object(ObjType::Text) => Json::String(doc.text(id).unwrap_or_default()),
        Value::Scalar(s) => scalar_to_json(s),
    }
}

fn scalar_to_json(s: &ScalarValue) -> Json {
    match s {
        ScalarValue::Str(s) => Json::String(s.to_string()),
        ScalarValue::Int(i) => Json::from(*i),
        ScalarValue::Uint(u) => Json::from(*u),
        ScalarValue::F64(f) => Number::from_f64(*f).map(Json::Number).unwrap_or(Json::Null),
        ScalarValue::Counter(c) => Json::from(i64::from(c)),
        ScalarValue::Timestamp(t) => Json::from(*t),
        ScalarValue::Boolean(b) => Json::Bool(*b),
        ScalarValue::Bytes(b) => Json::Array(b.iter().map(|x| Json::from(*x)).collect()),
        ScalarValue::Null | ScalarValue::Unknown { .. } => Json::Null,
    }
}

fn scalar(value: &Json) -> Result<Option<ScalarValue>, Error> {
    Ok(match value {
        Json::Null => Some(ScalarValue::Null),
        Json::Bool(b) => Some(ScalarValue::Boolean(*b)),
        Json::String(s) => Some(ScalarValue::Str(s.as_str().into())),
        Json::Number(n) => Some(if let Some(i) = n.as_i64() {
            ScalarValue::Int(i)
        } else if let Some(u) = n.as_u64() {
            ScalarValue::Uint(u)
        } else {
            ScalarValue::F64(
                n.as_f64()
                    .ok_or_else(|| Error::Value(format!("{n} is not representable")))?,
            )
        }),
        Json::Array(_) | Json::Object(_) => None,
    })
}

fn fill(doc: &mut AutoCommit, obj: &ObjId, value: &Json) -> Result<(), Error> {
    let am = |e: automerge::AutomergeError| Error::Value(e.to_string());
    match value {
        Json::Object(m) => {
            for (k, v) in m {
                match scalar(v)? {
                    Some(s) => doc.put(obj, k.as_str(), s).map_err(am)?,
                    None => {
                        let child = doc.put_object(obj, k.as_str(), obj_type(v)).map_err(am)?;
                        fill(doc, &child, v)?;
                    }
                }
            }
        }
        Json::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                match scalar(v)? {
                    Some(s) => doc.insert(obj, i, s).map_err(am)?,
                    None => {
                        let child = doc.insert_object(obj, i, obj_type(v)).map_err(am)?;
                        fill(doc, &child, v)?;
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn obj_type(v: &Json) -> ObjType {
    if v.is_array() { ObjType::List } else { ObjType::Map }
}

/// Set `path` to `value`, creating missing intermediate maps. Setting the
/// root requires a JSON object, whose keys replace the root's.
pub fn set(doc: &mut AutoCommit, path: &DocPath, value: &Json) -> Result<(), Error> {
    let am = |e: automerge::AutomergeError| Error::Value(e.to_string());
    if path.is_root() {
        if !value.is_object() {
            return Err(path_err(&path.text, "the root can only be set to a JSON object"));
        }
        return fill(doc, &ROOT, value);
    }
    let (parent, key) = parent_of(doc, path, true)?;
    match (parent, scalar(value)?) {
        (Parent::Map(obj), Some(s)) => doc.put(&obj, key.as_str(), s).map_err(am)?,
        (Parent::Map(obj), None) => {
            let child = doc.put_object(&obj, key.as_str(), obj_type(value)).map_err(am)?;
            fill(doc, &child, value)?;
        }
        (Parent::List(obj, i), s) => {
            let len = doc.length(&obj);
            if i > len {
                return Err(path_err(
                    &path.text,
                    format!("index {i} is past the end of the list (length {len})"),
                ));
            }
            match (s, i == len) {
                (Some(s), true) => doc.insert(&obj, i, s).map_err(am)?,
                (Some(s), false) => doc.put(&obj, i, s).map_err(am)?,
                (None, true) => {
                    let child = doc.insert_object(&obj, i, obj_type(value)).map_err(am)?;
                    fill(doc, &child, value)?;
                }
                (None, false) => {
                    let child = doc.put_object(&obj, i, obj_type(value)).map_err(am)?;
                    fill(doc, &child, value)?;
                }
            }
        }
    }
    Ok(())
}

/// Remove what `path` names. Fails if there is nothing there.
pub fn delete(doc: &mut AutoCommit, path: &DocPath) -> Result<(), Error> {
    let am = |e: automerge::AutomergeError| Error::Value(e.to_string());
    let (parent, key) = parent_of(doc, path, false)?;
    match parent {
        Parent::Map(obj) => {
            if doc.get(&obj, key.as_str()).map_err(am)?.is_none() {
                return Err(path_err(&path.text, "nothing to delete there"));
            }
            doc.delete(&obj, key.as_str()).map_err(am)
        }
        Parent::List(obj, i) => {
            if i >= doc.length(&obj) {
                return Err(path_err(&path.text, format!("index {i} is past the end of the list")));
            }
            doc.delete(&obj, i).map_err(am)
        }
    }
}

/// The object at `path`, which must exist and be of type `want`.
fn object_at(doc: &mut AutoCommit, path: &DocPath, want: ObjType, what: &str) -> Result<ObjId, Error> {
    let (parent, key) = parent_of(doc, path, false)?;
    let found = match &parent {
        Parent::Map(obj) => doc.get(obj, key.as_str()),
        Parent::List(obj, i) => doc.get(obj, *i),
    }
    .map_err(|e| path_err(&path.text, e.to_string()))?;
    match found {
        Some((Value::Object(t), id)) if t == want => Ok(id),
        Some(_) => Err(path_err(&path.text, format!("this is not {what}"))),
        None => Err(path_err(&path.text, "nothing there")),
    }
}

/// Insert `value` into the list at `path` before `index` (`index` = length
/// appends).
pub fn insert(doc: &mut AutoCommit, path: &DocPath, index: usize, value: &Json) -> Result<(), Error> {
    let am = |e: automerge::AutomergeError| Error::Value(e.to_string());
    let list = if path.is_root() {
        return Err(path_err(&path.text, "the root is a map, not a list"));
    } else {
        object_at(doc, path, ObjType::List, "a list")?
    };
    let len = doc.length(&list);
    if index > len {
        return Err(path_err(
            &path.text,
            format!("index {index} is past the end of the list (length {len})"),
        ));
    }
    match scalar(value)? {
        Some(s) => doc.insert(&list, index, s).map_err(am),
        None => {
            let child = doc.insert_object(&list, index, obj_type(value)).map_err(am)?;
            fill(doc, &child, value)
        }
    }
}

/// Most characters [`set_text`] and [`splice_text`] insert in one change
/// (4 Mi). Automerge needs about 300 bytes of memory per character while
/// it applies an insert, so a larger paste could exhaust a browser tab's
/// memory (4 GiB for WebAssembly); it is refused before anything changes
/// ([`Error::TextTooLarge`]). Insert longer texts in several changes.
pub const MAX_TEXT_INSERT: usize = 4 << 20;

/// [`Error::TextTooLarge`] if `text` is over [`MAX_TEXT_INSERT`] characters.
pub(crate) fn check_text_insert(text: &str) -> Result<(), Error> {
    if text.len() > MAX_TEXT_INSERT {
        let chars = text.chars().count();
        if chars > MAX_TEXT_INSERT {
            return Err(Error::TextTooLarge {
                chars,
                max: MAX_TEXT_INSERT,
            });
        }
    }
    Ok(())
}

/// Make `path` a collaborative text (concurrent edits merge character by
/// character) holding `text`, replacing what was there.
pub fn set_text(doc: &mut AutoCommit, path: &DocPath, text: &str) -> Result<(), Error> {
    check_text_insert(text)?;
    let am = |e: automerge::AutomergeError| Error::Value(e.to_string());
    let (parent, key) = parent_of(doc, path, true)?;
    let obj = match parent {
        Parent::Map(obj) => doc.put_object(&obj, key.as_str(), ObjType::Text).map_err(am)?,
        Parent::List(obj, i) if i == doc.length(&obj) => doc.insert_object(&obj, i, ObjType::Text).map_err(am)?,
        Parent::List(obj, i) if i < doc.length(&obj) => doc.put_object(&obj, i, ObjType::Text).map_err(am)?,
        Parent::List(..) => return Err(path_err(&path.text, "index past the end of the list")),
    };
    doc.splice_text(&obj, 0, 0, text).map_err(am)
}

/// In the text at `path`, delete `delete` characters at `index` (counted in
/// Unicode code points) and insert `insert` there.
pub fn splice_text(
    doc: &mut AutoCommit,
    path: &DocPath,
    index: usize,
    delete: usize,
    insert: &str,
) -> Result<(), Error> {
    check_text_insert(insert)?;
    let text = object_at(doc, path, ObjType::Text, "a text (create it with set_text)")?;
    let len = doc.length(&text);
    if index.checked_add(delete).is_none_or(|end| end > len) {
        return Err(path_err(
            &path.text,
            format!("{delete} characters at {index} is past the end of the text (length {len})"),
        ));
    }
    let delete = isize::try_from(delete).map_err(|_| path_err(&path.text, "delete count too large"))?;
    doc.splice_text(&text, index, delete, insert)
        .map_err(|e| Error::Value(e.to_string()))
}

/// Add `by` to the counter at `path`, creating it (from 0) if absent.
/// Concurrent increments add up instead of overwriting each other.
pub fn increment(doc: &mut AutoCommit, path: &DocPath, by: i64) -> Result<(), Error> {
    let am = |e: automerge::AutomergeError| Error::Value(e.to_string());
    let (parent, key) = parent_of(doc, path, true)?;
    let current = match &parent {
        Parent::Map(obj) => doc.get(obj, key.as_str()),
        Parent::List(obj, i) => doc.get(obj, *i),
    }
    .map_err(am)?;
    match (parent, current) {
        (Parent::Map(obj), Some((Value::Scalar(s), _))) if matches!(s.as_ref(), ScalarValue::Counter(_)) => {
            doc.increment(&obj, key.as_str(), by).map_err(am)
        }
        (Parent::List(obj, i), Some((Value::Scalar(s), _))) if matches!(s.as_ref(), ScalarValue::Counter(_)) => {
            doc.increment(&obj, i, by).map_err(am)
        }
        (Parent::Map(obj), None) => doc.put(&obj, key.as_str(), ScalarValue::counter(by)).map_err(am),
        (Parent::List(obj, i), None) if i == doc.length(&obj) => {
            doc.insert(&obj, i, ScalarValue::counter(by)).map_err(am)
        }
        _ => Err(path_err(&path.text, "this is not a counter")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> DocPath {
        DocPath::parse(s).unwrap()
    }

    #[test]
    fn set_get_delete_round_trip() {
        let mut d = AutoCommit::new();
        set(&mut d, &p("meta/title"), &json!("Groceries")).unwrap();
        set(&mut d, &p("items"), &json!([{"name": "milk", "n": 2}, 1.5, true, null])).unwrap();
        set(&mut d, &p("items/4"), &json!("appended")).unwrap();
        set(&mut d, &p("items/0/n"), &json!(3)).unwrap();
        assert_eq!(get(&d, &p("meta/title")).unwrap(), Some(json!("Groceries")));
        assert_eq!(get(&d, &p("items/0")).unwrap(), Some(json!({"name": "milk", "n": 3})));
        assert_eq!(get(&d, &p("nope")).unwrap(), None);
        delete(&mut d, &p("items/1")).unwrap();
        assert_eq!(
            whole(&d),
            json!({"meta": {"title": "Groceries"}, "items": [{"name": "milk", "n": 3}, true, null, "appended"]})
        );
    }

    #[test]
    fn lists_text_and_counters() {
        let mut d = AutoCommit::new();
        set(&mut d, &p("todos"), &json!(["b"])).unwrap();
        insert(&mut d, &p("todos"), 0, &json!("a")).unwrap();
        insert(&mut d, &p("todos"), 2, &json!({"c": true})).unwrap();
        assert!(insert(&mut d, &p("todos"), 9, &json!(1)).is_err());
        set_text(&mut d, &p("note"), "hello").unwrap();
        splice_text(&mut d, &p("note"), 5, 0, " world").unwrap();
        splice_text(&mut d, &p("note"), 0, 1, "H").unwrap();
        assert!(splice_text(&mut d, &p("note"), 10, 5, "x").is_err());
        assert!(splice_text(&mut d, &p("todos"), 0, 0, "x").is_err(), "not a text");
        increment(&mut d, &p("votes"), 2).unwrap();
        increment(&mut d, &p("votes"), 3).unwrap();
        assert!(increment(&mut d, &p("note"), 1).is_err());
        assert_eq!(
            whole(&d),
            json!({"todos": ["a", "b", {"c": true}], "note": "Hello world", "votes": 5})
        );
    }

    #[test]
    fn bad_paths_are_errors() {
        let mut d = AutoCommit::new();
        set(&mut d, &p("a"), &json!([1])).unwrap();
        assert!(DocPath::parse("a//b").is_err());
        assert!(set(&mut d, &p("a/x"), &json!(1)).is_err());
        assert!(set(&mut d, &p("a/5"), &json!(1)).is_err());
        assert!(delete(&mut d, &p("missing")).is_err());
        assert!(get(&d, &p("a/0/deeper")).is_err());
        assert!(set(&mut d, &p(""), &json!(3)).is_err());
    }
}
