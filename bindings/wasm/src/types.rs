//! TypeScript declarations of the plain objects the API passes to and
//! returns from JavaScript, so that listeners and results are typed.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** A JSON-compatible value: what documents hold. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** One Automerge patch: what changed, at `path` (map keys and list indexes from the root). */
export type Patch =
  | { action: 'put'; path: (string | number)[]; key?: string; index?: number; conflict: boolean }
  | { action: 'insert'; path: (string | number)[]; index: number; count: number }
  | { action: 'splice'; path: (string | number)[]; index: number; text: string }
  | { action: 'increment'; path: (string | number)[]; prop: string | number; by: number }
  | { action: 'conflict'; path: (string | number)[]; prop: string | number }
  | { action: 'delete'; path: (string | number)[]; key?: string; index?: number; length?: number }
  | { action: 'mark'; path: (string | number)[] };

/** A presence message from another member. */
export interface Broadcast { from: string; value: Json }

/** Members and roles of a document. */
export interface DocInfo {
  id: string;
  name: string | null;
  myRole: 'read' | 'write' | 'admin' | 'replicate' | null;
  members: { member: string; role: 'read' | 'write' | 'admin' | 'replicate' }[];
  readable: boolean;
  storedBytes: number;
}

/** Why a relay or peer refused data of a document. */
export type RefusalReason = 'too-large' | 'not-allowed' | 'invalid' | 'document-limit' | 'storage-full' | 'storage-failed';

/** A document a relay or peer refused data of, and why (`message` says it in words). */
export interface Refused { doc: string; reason: RefusalReason; message: string }

/**
 * Where this repo stands with a relay or peer. `refused` lists documents
 * (also counted in `unsynced`) it refused data of, until it acknowledges them.
 */
export interface SyncStatus { synced: number; unsynced: number; pending: number; refused: Refused[]; complete: boolean; connected: boolean }

/** A connection event. `relayed`: through a relay circuit. */
export type NetworkEvent =
  | { type: 'connected' | 'session-opened' | 'path'; peer: string; relayed: boolean }
  | { type: 'disconnected' | 'session-closed' | 'reachable'; peer: string };

/**
 * A document arrived, or its members, roles or keys changed; or the repo
 * was reloaded from storage after an internal error (`PanicError`).
 */
export type RepoEvent =
  | { type: 'doc-added' | 'access-changed'; doc: string }
  | ({ type: 'peer-refused'; peer: string } & Refused)
  | { type: 'reloaded'; message: string };

/** Why a repo closed. */
export interface CloseEvent { reason: 'closed' | 'taken-over' }
"#;
