// The package's API: what `index.js` exports. Its classes stand in front of
// the WebAssembly module's, so this file describes them (and the plain
// objects they pass), not the module's generated declarations, which are
// internal.
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
/** A repo's counts (`repo.stats()`). */
export interface RepoStats {
  /** Documents held. */
  documents: number;
  /** Documents in memory now (the others load on first use). */
  loaded: number;
  /** Roughly the bytes the documents in memory take (held against `memoryBudget`). */
  memoryEstimate: number;
  /** Sealed bytes stored (access ops and chunks). */
  storedBytes: number;
  /** Peers with an open sync session. */
  peers: number;
  /** Times data from a peer was refused. */
  rejected: number;
}

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
 * A document arrived, or its members, roles or keys changed; a peer refused
 * data; local storage filled up or has room again; the repo was reloaded
 * from storage after an internal error (`PanicError`); or the tab holding
 * the repo went away and this one holds it now (`promoted`).
 */
export type RepoEvent =
  | { type: 'doc-added' | 'access-changed'; doc: string }
  | ({ type: 'peer-refused'; peer: string } & Refused)
  | { type: 'reloaded'; message: string }
  | { type: 'promoted'; message: string }
  | { type: 'storage'; state: StorageState };

/**
 * Whether a repo can store: `full` while the browser's quota refuses writes
 * (edits stay in memory and are written once there is room), `failed` when
 * storage failed for good.
 */
export type StorageState = 'ok' | 'full' | 'failed';

/** Why a repo closed. */
export interface CloseEvent { reason: 'closed' }

/** Every error synkro throws; `code` says which kind. */
export class SynkroError extends Error {
  code: 'invalid-argument' | 'not-found' | 'access' | 'storage' | 'network' | 'panicked' | 'other';
}
/** A bad argument (wrong type, malformed id, path or token; a paste too large for one change). */
export class InvalidArgumentError extends SynkroError {}
/** No such document, or it has not arrived yet. */
export class NotFoundError extends SynkroError {}
/** The document's access rules do not allow it (not a writer, not an admin). */
export class AccessError extends SynkroError {}
/** Browser storage failed or is full. */
export class StorageError extends SynkroError {}
/** A relay or peer could not be reached, or refused what was sent. */
export class NetworkError extends SynkroError {}
/**
 * synkro hit an internal error (a panic) during the call, which did not
 * happen; the repos are reloaded from storage (listeners and relays kept)
 * and `onEvent` reports `{type: 'reloaded'}`. Edits not yet saved are lost.
 */
export class PanicError extends SynkroError {}

export interface OpenOptions {
  /**
   * Where documents live: IndexedDB (default; survives reloads; every tab
   * of the origin shares the repo and sees the others' edits live) or memory.
   */
  storage?: 'indexeddb' | 'memory';
  /** Which repo of this origin (IndexedDB databases `synkro/<name>`); default "default". */
  name?: string;
  /**
   * Bytes of documents kept in memory (default 256 MiB): past it, idle
   * documents no live handle holds are unloaded, and load again on their
   * next use. A handle holds its document until `free()` or until it is
   * garbage-collected (a handle with listeners is kept until they stop).
   */
  memoryBudget?: number;
  /** Relays to sync through (multiaddrs ending in /p2p/<id>, over /ws or /webrtc-direct). */
  relays?: string[];
  /** How to reach other browsers (see `ConnectOptions`). */
  connect?: ConnectOptions;
}

/**
 * Browsers met through a relay try a direct WebRTC connection and sync
 * over it when it comes up; `repo.connection(peer)` tells which.
 */
export interface ConnectOptions {
  /** Try direct browser-to-browser WebRTC (default true). */
  direct?: boolean;
  /** ICE server URLs; default: STUN on each relay's host, port 3478. */
  iceServers?: string[];
  /** "relay": TURN candidates only (with no TURN server, no direct path). */
  icePolicy?: 'all' | 'relay';
}

/**
 * A counter: concurrent increments add up instead of overwriting each
 * other. Store `new Counter(0)`; in a change, `d.votes.increment()`.
 */
export class Counter {
  constructor(value?: number);
  readonly value: number;
  /** Add `by` (default 1); only on a draft's counter, inside `change()`. Returns the new value. */
  increment(by?: number): number;
  /** Subtract `by` (default 1); see `increment`. */
  decrement(by?: number): number;
  valueOf(): number;
  toJSON(): number;
}

/** A string stored as one value rather than as collaborative text (ids, enum values). */
export class ImmutableString {
  constructor(value: string);
  readonly val: string;
  toJSON(): string;
}

/** What a document may hold: text is a `string`. */
export type Value =
  | null | boolean | number | string | Counter | ImmutableString | Date | Uint8Array
  | Value[] | { [key: string]: Value };

/** One Automerge patch; `path` ends in the key or index it acts on (text indexes in UTF-16 units). */
export type DocPatch =
  | { action: 'put'; path: (string | number)[]; value: Value }
  | { action: 'insert'; path: (string | number)[]; values: Value[] }
  | { action: 'splice'; path: (string | number)[]; value: string }
  | { action: 'del'; path: (string | number)[]; length?: number }
  | { action: 'inc'; path: (string | number)[]; value: number }
  | { action: 'conflict' | 'mark'; path: (string | number)[] };

/** A change event: the new snapshot and what changed. */
export interface ChangeEvent<T> { doc: T; patches: DocPatch[] }

/** One change of a document's history. */
export interface Change {
  /** Its hash (what heads are made of). */
  hash: string;
  /** The member who made it (`null` for changes from plain Automerge or older releases). */
  author: string | null;
  /** The Automerge actor that made it (one per device and document). */
  actor: string;
  /** Its number among the actor's changes, from 1. */
  seq: number;
  /** When it was made, by its author's clock (ms since the epoch; 0 if unknown). */
  time: number;
  /** The message given to `change(fn, { message })`. */
  message: string | null;
  /** The changes it came after. */
  deps: string[];
}

/** Options of `change`. */
export interface ChangeOptions {
  /** Kept in the history with the change. */
  message?: string;
}

/**
 * In a `change()` callback: in the text at `path` (from `d`, the draft or
 * an object in it), delete `deleteCount` characters at `index` and insert
 * `insert`. Indexes count UTF-16 units, as JavaScript strings do.
 */
export function splice(d: object, path: (string | number)[], index: number, deleteCount: number, insert?: string): void;
/** In a `change()` callback: make the text at `path` read `text`, as the smallest edit. */
export function updateText(d: object, path: (string | number)[], text: string): void;

/** One document of a repo; `T` is the shape of its content. */
export class DocHandle<T = any> {
  private constructor();
  /** The document id (share it with the invitation, or `repo.find(id)`). */
  readonly id: string;
  /**
   * The document now, as frozen data: the same object until the document
   * changes, and what a change did not touch stays the same objects. Throws
   * `NotFoundError` while a joined document has not arrived yet.
   */
  doc(): T;
  /**
   * Change the document in one atomic change: edit the draft `fn` gets
   * as a plain object (assign, `delete`, `push`, `splice`, `insertAt`,
   * `deleteAt`; `splice()`/`updateText()` for text; `increment()` on a
   * `Counter`). If `fn` throws, nothing changes. Returns the new snapshot.
   */
  change(fn: (d: T) => void, options?: ChangeOptions): T;
  /** Follow changes, local or remote; returns a function that stops it. */
  on(event: 'change', listener: (event: ChangeEvent<T>) => void): () => void;
  /** The hashes of the document's latest changes. */
  heads(): string[];
  /** Every change, oldest first. */
  history(): Change[];
  /** The document as it was at `heads` (from `heads()` or `history()`). */
  view(heads: string[]): T;
  /** The document in Automerge's own format: `Automerge.load()` opens it, history included. */
  export(): Uint8Array;
  /** The whole document as JSON (text and counters as plain values). */
  value(): Json;
  /** The value at a slash path like `"todos/0/title"` (`undefined` if absent). */
  get(path: string): Json | undefined;
  /** Set a path to a JSON-compatible value, creating maps on the way (strings are stored whole, not as text). */
  set(path: string, value: Json): void;
  /** Remove what a path names. */
  delete(path: string): void;
  /** Insert into the list at `path` before `index` (`index` = length appends). */
  insert(path: string, index: number, value: Json): void;
  /** Make `path` a collaborative text holding `text` (at most 4 Mi characters in one change). */
  setText(path: string, text: string): void;
  /** In the text at `path`, delete `deleteCount` characters at `index` (code points) and insert `text`. */
  splice(path: string, index: number, deleteCount: number, text: string): void;
  /** Add `by` (a safe integer) to the counter at `path`, created at 0. */
  increment(path: string, by: number): void;
  /** Members and roles, this device's role, size. */
  info(): DocInfo;
  /** Seal pending edits now and wait until they are stored. */
  flush(): Promise<void>;
  /** Send a JSON-compatible value (presence: a cursor, a name; at most 16 KiB) to the members online now; never stored. */
  broadcast(value: Json): Promise<void>;
  /** An invitation token for `role`; it carries key material: send it privately (e.g. in a URL fragment). */
  share(role: 'read' | 'write' | 'admin'): Promise<string>;
  /** Remove a member and rotate the key: they read nothing written after. */
  revoke(member: string): Promise<void>;
  /** An encrypted backup, opened with `repo.restore(bytes, passphrase)`. */
  backup(passphrase: string): Promise<Uint8Array>;
  /** Wait until the relay `member` has stored everything of this document (`timeoutMs`, default 10 s). */
  whenDurableOn(member: string, timeoutMs?: number): Promise<void>;
  /** Call `listener(patches)` after every change, local or remote; returns a function that stops it. */
  onChange(listener: (patches: Patch[]) => void): () => void;
  /** Call `listener({from, value})` for every presence message from another member; returns a function that stops it. */
  onBroadcast(listener: (message: Broadcast) => void): () => void;
  /**
   * Let the document go now instead of when this handle is collected: it
   * may be unloaded past the memory budget (`repo.find(id)` brings it
   * back). The handle is unusable afterwards.
   */
  free(): void;
}

/** A local-first repository of encrypted documents. */
export class Repo {
  private constructor();
  /** Open a repo (see `OpenOptions`) and connect to its `relays`; the same as `openRepo`. */
  static open(options?: OpenOptions): Promise<Repo>;
  /** Whether `close()` ran. */
  readonly closed: boolean;
  /**
   * Whether another tab of this browser holds the repo (writes storage,
   * holds the connections; this tab hands it its edits and reads its
   * `syncStatus`). When that tab goes away, one of the others holds it.
   */
  readonly isGuest: boolean;
  /** This device's member id in every document. */
  readonly memberId: string;
  /** Damage found and skipped when the repo was opened, as messages. */
  loadProblems(): string[];
  /** Counts: documents held and loaded, memory, peers. */
  stats(): RepoStats;
  /** Ids of every document here. */
  list(): string[];
  /** Where this repo stands with `peer` (a relay's member id). */
  syncStatus(peer: string): SyncStatus;
  /** Whether this repo can store now (`onEvent` reports each change). */
  storageState(): StorageState;
  /** How this device reaches `peer` now. */
  connection(peer: string): 'direct' | 'relayed' | 'offline';
  /** Create a document owned by this device. */
  create<T = any>(): Promise<DocHandle<T>>;
  /** Join a document with an invitation token; its content arrives from a relay or peer that has it. */
  join<T = any>(token: string): Promise<DocHandle<T>>;
  /** A new document from Automerge's format (`Automerge.save()`), content and history; encrypted and owned by this device from now on. */
  import<T = any>(bytes: Uint8Array): Promise<DocHandle<T>>;
  /** Restore a document from `doc.backup(passphrase)`. */
  restore<T = any>(backup: Uint8Array, passphrase: string): Promise<DocHandle<T>>;
  /** The document with this id. */
  find<T = any>(id: string): Promise<DocHandle<T>>;
  /** Sync through these relays and reach other browsers as `options` says; resolves with the relays' member ids. */
  connect(relays: string[], options?: ConnectOptions): Promise<string[]>;
  /** Disconnect from every relay and peer (work offline); `connect` again to catch up. */
  disconnect(): Promise<void>;
  /** Save what is pending, disconnect and let another tab in. */
  close(): Promise<void>;
  /** Call `listener({reason})` once the repo is closed; returns a function that removes it. */
  onClose(listener: (event: CloseEvent) => void): () => void;
  /** Follow connections, sessions and paths; returns a function that stops it. */
  onNetwork(listener: (event: NetworkEvent) => void): () => void;
  /** Document events (arrived, access changed, refused by a peer) and reloads; returns a function that stops it. */
  onEvent(listener: (event: RepoEvent) => void): () => void;
  /** Release the module's handle now instead of when it is collected. */
  free(): void;
}

/** Load the WebAssembly module once (openRepo calls it). */
export function ready(moduleOrPath?: string | URL | Request | WebAssembly.Module): Promise<void>;

/** Open a repository (and connect to `relays`). */
export function openRepo(options?: OpenOptions): Promise<Repo>;
