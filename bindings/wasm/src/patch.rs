//! Automerge patches as plain JS objects for `on('change')`:
//! `{ action, path, ... }` where `path` lists map keys and list indexes
//! from the root to the object that changed.

use serde_json::{Value as Json, json};
use synkro::automerge::{Patch, PatchAction, Prop};

fn prop(p: &Prop) -> Json {
    match p {
        Prop::Map(k) => json!(k),
        Prop::Seq(i) => json!(i),
    }
}

/// One patch as JSON.
pub fn to_json(p: &Patch) -> Json {
    let path: Vec<Json> = p.path.iter().map(|(_, pr)| prop(pr)).collect();
    let (action, extra) = match &p.action {
        PatchAction::PutMap { key, conflict, .. } => ("put", json!({ "key": key, "conflict": conflict })),
        PatchAction::PutSeq { index, conflict, .. } => ("put", json!({ "index": index, "conflict": conflict })),
        PatchAction::Insert { index, values, .. } => ("insert", json!({ "index": index, "count": values.len() })),
        PatchAction::SpliceText { index, value, .. } => {
            ("splice", json!({ "index": index, "text": value.make_string() }))
        }
        PatchAction::Increment { prop: pr, value } => ("increment", json!({ "prop": prop(pr), "by": value })),
        PatchAction::Conflict { prop: pr } => ("conflict", json!({ "prop": prop(pr) })),
        PatchAction::DeleteMap { key } => ("delete", json!({ "key": key })),
        PatchAction::DeleteSeq { index, length } => ("delete", json!({ "index": index, "length": length })),
        PatchAction::Mark { .. } => ("mark", json!({})),
    };
    let mut out = json!({ "action": action, "path": path });
    if let (Some(o), Json::Object(e)) = (out.as_object_mut(), extra) {
        o.extend(e);
    }
    out
}
