// synkro: local-first, end-to-end encrypted Automerge documents that sync.
//
// This wrapper loads the WebAssembly module, turns failures into instances
// of the error classes below, and is the browser's panic fence: wasm32
// aborts on panic, so a bug inside a dependency (Automerge on a strange
// change, say) kills the whole instance. The `Repo` and `DocHandle` here
// stand in front of the module's own; when the instance dies, the call that
// hit it throws `PanicError`, a fresh instance is started (its own copy of
// the JS glue, its own memory) and every open repo is reopened from
// IndexedDB, reconnected and given back its listeners. The same objects go
// on working; what was not saved yet when the instance died is lost, as in
// a crashed tab (`flush()` / `whenDurableOn()` say when an edit is safe).

/** Every error synkro throws; `code` says which kind. */
export class SynkroError extends Error {
  constructor(message, code = 'other') {
    super(message);
    this.name = 'SynkroError';
    this.code = code;
  }
}
/** A bad argument (wrong type, malformed id, path or token). */
export class InvalidArgumentError extends SynkroError {
  constructor(message) { super(message, 'invalid-argument'); this.name = 'InvalidArgumentError'; }
}
/** No such document, or it has not arrived yet. */
export class NotFoundError extends SynkroError {
  constructor(message) { super(message, 'not-found'); this.name = 'NotFoundError'; }
}
/** The document's access rules do not allow it (not a writer, not an admin). */
export class AccessError extends SynkroError {
  constructor(message) { super(message, 'access'); this.name = 'AccessError'; }
}
/** Browser storage failed or is full. */
export class StorageError extends SynkroError {
  constructor(message) { super(message, 'storage'); this.name = 'StorageError'; }
}
/** A relay or peer could not be reached. */
export class NetworkError extends SynkroError {
  constructor(message) { super(message, 'network'); this.name = 'NetworkError'; }
}
/**
 * synkro hit an internal error (a panic) during this call; the operation
 * did not happen. The repos are reloaded from storage: try again.
 */
export class PanicError extends SynkroError {
  constructor(message) { super(message, 'panicked'); this.name = 'PanicError'; }
}

import { Draft, draftOf } from './draft.js';
import { Counter, ImmutableString, applyPatches, counter, ids } from './snapshot.js';
import { TabNet } from './tabs.js';

export { Counter, ImmutableString };

/**
 * In a `change()` callback: in the text at `path` (from `d`, the draft or
 * an object in it), delete `deleteCount` characters at `index` and insert
 * `insert`. Indexes count UTF-16 units, as JavaScript strings do.
 */
export function splice(d, path, index, deleteCount, insert = '') {
  if (typeof insert !== 'string') throw new InvalidArgumentError('splice: the inserted text must be a string');
  draftOf(d, 'splice').splice(d, path, index, deleteCount, insert);
}

/**
 * In a `change()` callback: make the text at `path` read `text`, as the
 * smallest edit (concurrent edits elsewhere in the text survive).
 */
export function updateText(d, path, text) {
  if (typeof text !== 'string') throw new InvalidArgumentError('updateText: the text must be a string');
  draftOf(d, 'updateText').updateText(d, path, text);
}

const classes = {
  'invalid-argument': InvalidArgumentError,
  'not-found': NotFoundError,
  access: AccessError,
  storage: StorageError,
  network: NetworkError,
};

// The glue is loaded by URL rather than imported, so that a fresh copy of
// it (with fresh module-level state) can be loaded after a crash.
const glueUrl = new URL('./synkro_wasm.js', import.meta.url);
const wasmUrl = new URL('./synkro_wasm_bg.wasm', import.meta.url);

/** The compiled module (kept to start fresh instances) and the live one. */
let compiled;
let current;
let loading;
let recovering;
/** Open repos, reopened after a crash. */
const openRepos = new Set();

async function compile(source) {
  if (source instanceof WebAssembly.Module) return source;
  const response = fetch(source ?? wasmUrl);
  try {
    return await WebAssembly.compileStreaming(response);
  } catch {
    // Served without `application/wasm`: compile from the bytes.
    return WebAssembly.compile(await (await fetch(source ?? wasmUrl)).arrayBuffer());
  }
}

/** Start an instance of the module with its own copy of the glue. */
async function instantiate(generation) {
  const url = generation === 1 ? glueUrl.href : `${glueUrl.href}?instance=${generation}`;
  const glue = await import(/* @vite-ignore */ url);
  await glue.default({ module_or_path: compiled });
  glue.__setErrorFactory((code, message) => {
    const Class = classes[code];
    return Class ? new Class(message) : new SynkroError(message, code);
  });
  // `waiting`: how to reject the calls still waiting on this instance.
  const instance = { glue, generation, dead: false, message: '', waiting: new Set() };
  // Called by the panic hook just before the instance traps: nothing here
  // may call into it.
  glue.__onCrash((message) => markDead(instance, message));
  return instance;
}

function markDead(instance, message) {
  if (instance.dead) return;
  instance.dead = true;
  instance.message = message;
  // A trap that was not a panic ran no hook: fence the dead instance's
  // storage from here (the call only sets a flag).
  try { instance.glue.__markCrashed(); } catch { /* it cannot even do that */ }
  console.error(`synkro: internal error (${message}); reloading from storage`);
  const error = new PanicError(`synkro hit an internal error and reloaded from storage; the operation did not happen (${message})`);
  for (const reject of instance.waiting) reject(error);
  instance.waiting.clear();
  if (instance === current) setTimeout(recover, 0);
}

/** Replace the dead instance and reopen every repo that was open in it. */
function recover() {
  if (!recovering) {
    recovering = (async () => {
      const dead = current;
      current = await instantiate(dead.generation + 1);
      for (const repo of openRepos) {
        try {
          await repo._reopen(dead.message);
        } catch (e) {
          console.error('synkro: a repo could not be reopened after the internal error', e);
          openRepos.delete(repo);
        }
      }
    })().finally(() => { recovering = undefined; });
  }
  return recovering;
}

/**
 * Load the WebAssembly module (once). `openRepo` calls it; call it yourself
 * to pass a custom URL or `WebAssembly.Module`.
 */
export function ready(moduleOrPath) {
  if (!loading) {
    loading = (async () => {
      compiled = await compile(moduleOrPath);
      current = await instantiate(1);
    })();
    loading.catch(() => { loading = undefined; });
  }
  return loading;
}

/** Wait out a reload in progress (async calls wait; sync calls cannot). */
function live() {
  if (!current.dead) return null;
  return recover();
}

/** The error to throw for `e`, thrown by a call into `instance`. */
function failure(instance, e) {
  if (e instanceof WebAssembly.RuntimeError) markDead(instance, e.message);
  if (instance.dead) {
    const error = new PanicError(`synkro hit an internal error and is reloading from storage; the operation did not happen (${instance.message})`);
    error.cause = e;
    return error;
  }
  return e;
}

/** `promise` from `instance`, rejected if the instance dies first. */
function guarded(instance, promise) {
  return new Promise((resolve, reject) => {
    instance.waiting.add(reject);
    promise.then(
      (v) => { instance.waiting.delete(reject); resolve(v); },
      (e) => { instance.waiting.delete(reject); reject(failure(instance, e)); },
    );
  });
}

/**
 * Call (or read) `method` of `owner`'s object in the live instance; a trap
 * turns into `PanicError`, a promise that the death of the instance leaves
 * pending rejects, and `wrap` turns module objects in results into their
 * stand-ins. `args` is a function that checks and returns the arguments:
 * a bad one throws (or, for an async method, rejects) before the module is
 * touched.
 */
function invoke(owner, method, args, { async = false, wrap = same } = {}) {
  let checked;
  try {
    checked = args();
  } catch (e) {
    if (async) return Promise.reject(e);
    throw e;
  }
  const pending = live();
  if (pending) {
    if (async) return pending.then(() => invoke(owner, method, () => checked, { async, wrap }));
    throw new PanicError(`synkro is reloading from storage after an internal error (${current.message}); try again in a moment`);
  }
  const instance = current;
  let result;
  try {
    const target = owner._target();
    const member = target[method];
    result = typeof member === 'function' ? member.apply(target, checked) : member;
  } catch (e) {
    throw failure(instance, e);
  }
  if (result instanceof Promise) {
    return guarded(instance, result).then(wrap);
  }
  return wrap(result);
}

const same = (v) => v;
const none = () => [];

/**
 * `value`, if it is a string. The module's JS glue copies a string argument
 * into wasm memory without looking at its type, and anything else there
 * corrupts the instance: every string argument is checked here first.
 */
function text(method, name, value) {
  if (typeof value !== 'string') {
    const got = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
    throw new InvalidArgumentError(`${method}: ${name} must be a string, got ${got}`);
  }
  return value;
}

function bytesArg(method, value) {
  if (!(value instanceof Uint8Array)) throw new InvalidArgumentError(`${method}: pass the bytes as a Uint8Array`);
  return value;
}

/**
 * A listener registered on the module's object: kept, so that it is
 * registered again on the object of the next instance after a crash.
 */
class Listeners {
  constructor() { this.entries = new Set(); }

  add(owner, method, listener) {
    if (typeof listener !== 'function') throw new InvalidArgumentError(`${method}: the listener must be a function`);
    const entry = { method, listener, stop: null };
    this.entries.add(entry);
    this.attach(owner, entry);
    // A document handle with listeners is kept (its document with it)
    // while they listen, even if the app keeps only the listener.
    owner._repo?._held.add(owner);
    return () => {
      if (!this.entries.delete(entry)) return;
      try { entry.stop?.(); } catch { /* the instance it belonged to is gone */ }
      if (this.entries.size === 0) owner._repo?._held.delete(owner);
    };
  }

  attach(owner, entry) {
    const instance = current;
    // Only the live instance's events reach the app.
    entry.stop = owner._target()[entry.method]((...a) => {
      if (instance === current && !instance.dead) entry.listener(...a);
    });
  }

  reattach(owner) {
    for (const entry of this.entries) this.attach(owner, entry);
  }
}

/** One document of a repo (stands in front of the module's `DocHandle`). */
export class DocHandle {
  constructor(repo, inner) {
    this._repo = repo;
    this._id = inner.id;
    this._inner = inner;
    this._generation = current.generation;
    this._listeners = new Listeners();
  }

  /** The module's handle in the live instance (found again after a crash). */
  _target() {
    if (this._generation !== current.generation) {
      // The repo's reload found every handle again; this one was not there.
      throw new PanicError(`document ${this._id} is not in storage after the reload`);
    }
    return this._inner;
  }

  /** The document id (share it with the invitation, or `repo.find(id)`). */
  get id() { return this._id; }

  /**
   * The document now: frozen plain data (text as strings, `Counter`s,
   * `Date`s, `Uint8Array`s). Cheap to call on every render: the same
   * object until the document changes, and what a change did not touch
   * stays the same objects in the next version.
   */
  doc() {
    if (!this._refresh(false)) {
      throw new NotFoundError(`document ${this._id} has not arrived yet; it appears once synced with a peer or relay that has it`);
    }
    return this._snap;
  }

  /**
   * Bring the snapshot up to date and tell change listeners (now, or
   * after this task if not `now`). Returns false if the document's
   * content has not arrived yet.
   */
  _refresh(now) {
    const target = this._target();
    if (this._snapOf !== target) {
      try {
        this._snap = invoke(this, 'materialize', () => [ids, counter]);
      } catch (e) {
        if (e instanceof NotFoundError) return false;
        throw e;
      }
      // Listeners waiting for a joined document hear it arrive.
      if (this._snapOf === null) this._emit([], now);
      this._snapOf = target;
      return true;
    }
    const patches = invoke(this, 'takePatches', () => [ids, counter]);
    if (patches === null) {
      // Changes were skipped while nobody read: read the whole document.
      this._snap = invoke(this, 'materialize', () => [ids, counter]);
      this._emit([], now);
    } else if (patches.length) {
      this._snap = applyPatches(this._snap, patches);
      this._emit(patches, now);
    }
    return true;
  }

  _emit(patches, now) {
    if (!this._changeListeners?.size) return;
    const event = { doc: this._snap, patches };
    const tell = () => {
      for (const listener of [...this._changeListeners]) {
        try { listener(event); } catch (e) { console.error('synkro: a change listener threw', e); }
      }
    };
    if (now) tell(); else queueMicrotask(tell);
  }

  /**
   * Change the document: `fn` gets a mutable draft of it (Automerge's
   * proxy semantics: assign, `delete`, list methods `push`, `splice`,
   * `insertAt`, `deleteAt`…, `splice()`/`updateText()` for text,
   * `increment()` on a `Counter`), and everything it does is one change,
   * kept in the history with `message`. If `fn` throws, nothing is
   * changed. Returns the new snapshot.
   */
  change(fn, options = {}) {
    if (typeof fn !== 'function') throw new InvalidArgumentError('change: pass a function that edits the draft');
    const message = options?.message;
    if (message !== undefined && typeof message !== 'string') throw new InvalidArgumentError('change: message must be a string');
    const draft = new Draft(this.doc());
    try {
      fn(draft.root);
    } finally {
      draft.closed = true;
    }
    if (draft.ops.length) {
      invoke(this, 'applyOps', () => [draft.ops, message]);
      this._refresh(true);
    }
    return this._snap;
  }

  /**
   * Follow changes, local or remote: `listener({doc, patches})` with the
   * new snapshot and Automerge's patches. Returns a function that stops it.
   */
  on(event, listener) {
    if (event !== 'change') throw new InvalidArgumentError(`on: unknown event ${JSON.stringify(event)}; there is 'change'`);
    if (typeof listener !== 'function') throw new InvalidArgumentError('on: the listener must be a function');
    // Not arrived yet: listeners hear it arrive.
    if (!this._refresh(false)) this._snapOf = null;
    this._changeListeners ??= new Set();
    this._changeListeners.add(listener);
    if (!this._stopWatch) this._stopWatch = this._listeners.add(this, 'watch', () => this._refresh(true));
    return () => {
      this._changeListeners.delete(listener);
      if (this._changeListeners.size === 0 && this._stopWatch) {
        this._stopWatch();
        this._stopWatch = undefined;
      }
    };
  }

  /** The document's heads: the hashes of its latest changes. */
  heads() { return invoke(this, 'heads', none); }
  /** Every change, oldest first: `{hash, author, actor, seq, time, message, deps}` (`time` in ms). */
  history() { return invoke(this, 'history', none); }
  /** The document as it was at `heads` (from `heads()` or `history()`). */
  view(heads) {
    return invoke(this, 'view', () => {
      if (!Array.isArray(heads) || !heads.every((h) => typeof h === 'string')) {
        throw new InvalidArgumentError('view: heads must be an array of change hashes');
      }
      return [heads, ids, counter];
    });
  }
  /** The document in Automerge's own format: `Automerge.load()` opens it, history included. */
  export() { return invoke(this, 'exportAutomerge', none); }

  /** The whole document as a plain JS object (a snapshot: read it again after a change). */
  value() { return invoke(this, 'value', none); }
  /** The value at a slash path like `"todos/0/title"` (`undefined` if absent). */
  get(path) { return invoke(this, 'get', () => [text('get', 'path', path)]); }
  /** Set a path to a JSON-compatible value, creating maps on the way. */
  set(path, value) { return invoke(this, 'set', () => [text('set', 'path', path), value]); }
  /** Remove what a path names. */
  delete(path) { return invoke(this, 'delete', () => [text('delete', 'path', path)]); }
  /** Insert into the list at `path` before `index` (`index` = length appends). */
  insert(path, index, value) { return invoke(this, 'insert', () => [text('insert', 'path', path), index, value]); }
  /** Make `path` a collaborative text holding `text`. */
  setText(path, value) {
    return invoke(this, 'setText', () => [text('setText', 'path', path), text('setText', 'text', value)]);
  }
  /** In the text at `path`, delete `deleteCount` characters at `index` and insert `insert`. */
  splice(path, index, deleteCount, insert) {
    return invoke(this, 'splice', () => [text('splice', 'path', path), index, deleteCount, text('splice', 'text', insert)]);
  }
  /** Add `by` (an integer) to the counter at `path`, created at 0. */
  increment(path, by) { return invoke(this, 'increment', () => [text('increment', 'path', path), by]); }
  /** Members and roles, this device's role, size. */
  info() { return invoke(this, 'info', none); }

  /** Seal pending edits now and wait until they are stored. */
  flush() { return invoke(this, 'flush', none, { async: true }); }
  /** Send a JSON-compatible value (presence) to the members online now; never stored. */
  broadcast(value) { return invoke(this, 'broadcast', () => [value], { async: true }); }
  /** An invitation token for `role`; it carries key material: send it privately. */
  share(role) { return invoke(this, 'share', () => [text('share', 'role', role)], { async: true }); }
  /** Remove a member and rotate the key: they read nothing written after. */
  revoke(member) { return invoke(this, 'revoke', () => [text('revoke', 'member', member)], { async: true }); }
  /** An encrypted backup, opened with `repo.restore(bytes, passphrase)`. */
  backup(passphrase) { return invoke(this, 'export', () => [text('backup', 'passphrase', passphrase)], { async: true }); }
  /** Wait until the relay `member` has stored everything of this document (`timeoutMs`, default 10 s). */
  whenDurableOn(member, timeoutMs) {
    return invoke(this, 'whenDurableOn', () => [text('whenDurableOn', 'member', member), timeoutMs], { async: true });
  }

  /** Call `listener(patches)` after every change, local or remote; returns a function that stops it. */
  onChange(listener) { return this._listeners.add(this, 'onChange', listener); }
  /** Call `listener({from, value})` for every presence message; returns a function that stops it. */
  onBroadcast(listener) { return this._listeners.add(this, 'onBroadcast', listener); }

  /** For the tests of the panic fence only. */
  __panicForTests(message, inTask) {
    return invoke(this, '__panicForTests', () => [text('__panicForTests', 'message', message), inTask]);
  }

  /** Let the document go now (it may be unloaded); the handle is unusable afterwards. */
  free() {
    this._repo._forget(this);
    try { this._inner.free(); } catch { /* already freed or gone */ }
  }
}
if (Symbol.dispose) {
  DocHandle.prototype[Symbol.dispose] = DocHandle.prototype.free;
}

/**
 * Forgets a collected handle's entry in its repo's map (the module's own
 * handle under it is freed by the module's finalizer, which unpins the
 * document).
 */
const collected = typeof FinalizationRegistry === 'undefined'
  ? null
  : new FinalizationRegistry(({ docs, id, ref }) => { if (docs.get(id) === ref) docs.delete(id); });

/** A local-first repository of encrypted documents. */
export class Repo {
  /**
   * Open a repo: documents in IndexedDB (the default; `name` picks the
   * repo, shared by every tab of the origin) or in memory.
   */
  static async open(options = {}) {
    await ready();
    const pending = live();
    if (pending) await pending;
    const { __afterCrash, ...rest } = options;
    const repo = new Repo(rest, await current.glue.Repo.open(rest));
    openRepos.add(repo);
    if (options.relays && options.relays.length) {
      await repo.connect(options.relays, options.connect);
    }
    return repo;
  }

  constructor(options, inner) {
    this._options = { ...options };
    this._inner = inner;
    this._relays = new Set();
    /** Document id -> WeakRef of its handle: a handle the app dropped lets its document go. */
    this._docs = new Map();
    /** Handles with listeners, kept while they listen. */
    this._held = new Set();
    this._listeners = new Listeners();
    this._reloaded = new Set();
    this._wasGuest = inner.isGuest;
    if ((options.storage ?? 'indexeddb') === 'indexeddb') this._net = new TabNet(options.name ?? 'default', this);
    this._watchClose();
  }

  _target() { return this._inner; }

  /** Forget this repo once it is closed. */
  _watchClose() {
    const instance = current;
    this._inner.onClose(() => {
      if (instance !== current) return;
      openRepos.delete(this);
      this._net?.close();
    });
  }

  /** Reopen in the live instance after a crash; give everything back. */
  async _reopen(message) {
    // Only a host's crashed instance holds the lock; a guest's request for
    // it died with it.
    this._inner = await current.glue.Repo.open({ ...this._options, __afterCrash: !this._wasGuest });
    this._wasGuest = this._inner.isGuest;
    this._watchClose();
    this._listeners.reattach(this);
    for (const doc of this._handles()) {
      try {
        // Documents load on first use: every live handle's is loaded again.
        doc._inner = await this._inner.find(doc.id);
        doc._generation = current.generation;
        doc._listeners.reattach(doc);
      } catch (e) {
        console.error(`synkro: document ${doc.id} is not in storage after the reload`, e);
      }
    }
    this._reconnect('reloaded', message);
  }

  /** This tab holds the repo now (the tab that did went away): connect what it held. */
  _promoted() {
    this._wasGuest = false;
    this._reconnect('promoted', 'the tab holding the repo went away; this one holds it now');
  }

  /**
   * Connect the relays kept from earlier `connect` calls, and tell the
   * `onEvent` listeners `{type, message}`. Reconnection is the network's
   * business (it redials by itself): a relay that is down now fails nothing.
   */
  _reconnect(type, message) {
    if (this._relays.size) {
      this.connect([...this._relays], this._connectOptions).catch((e) => console.error(`synkro: connecting the relays (${type}) failed`, e));
    }
    for (const listener of this._reloaded) listener({ type, message });
  }

  /** The stand-in for the module's handle (one per document id while the app holds it). */
  _doc(inner) {
    let doc = this._docs.get(inner.id)?.deref();
    if (!doc) {
      doc = new DocHandle(this, inner);
      const ref = new WeakRef(doc);
      this._docs.set(inner.id, ref);
      collected?.register(doc, { docs: this._docs, id: inner.id, ref });
    } else if (doc._inner !== inner) {
      try { inner.free(); } catch { /* nothing to free */ }
    }
    return doc;
  }

  /** The handles the app still holds. */
  _handles() {
    return [...this._docs.values()].map((ref) => ref.deref()).filter(Boolean);
  }

  /** `doc` was freed: a later `find` makes a new handle. */
  _forget(doc) {
    if (this._docs.get(doc.id)?.deref() === doc) this._docs.delete(doc.id);
    this._held.delete(doc);
  }

  /** Whether `close()` ran. */
  get closed() { return invoke(this, 'closed', none); }
  /**
   * Whether another tab of this browser holds the repo: it writes storage
   * and holds the connections; this tab sees every change live and hands
   * it its edits. When it goes away, one of the others holds it.
   */
  get isGuest() { return invoke(this, 'isGuest', none); }
  /** This device's member id in every document. */
  get memberId() { return invoke(this, 'memberId', none); }

  /** Damage found and skipped when the repo was opened, as messages. */
  loadProblems() { return invoke(this, 'loadProblems', none); }
  /** Counts: documents held and loaded, memory, peers. */
  stats() { return invoke(this, 'stats', none); }
  /** Ids of every document here. */
  list() { return invoke(this, 'list', none); }
  /** Where this repo stands with `peer` (a relay's member id). */
  syncStatus(peer) {
    if (this.isGuest) return this._net.syncStatus(text('syncStatus', 'peer', peer));
    return invoke(this, 'syncStatus', () => [text('syncStatus', 'peer', peer)]);
  }
  /** Whether this repo can store now: `"ok"`, `"full"` (quota) or `"failed"`. */
  storageState() { return invoke(this, 'storageState', none); }
  /** How this device reaches `peer` now: `"direct"`, `"relayed"` or `"offline"`. */
  connection(peer) {
    if (this.isGuest) return this._net.connection(text('connection', 'peer', peer));
    return invoke(this, 'connection', () => [text('connection', 'peer', peer)]);
  }

  /** Create a document owned by this device. */
  create() { return invoke(this, 'create', none, { async: true, wrap: (inner) => this._doc(inner) }); }
  /** Join a document with an invitation token; its content arrives from a relay or peer. */
  join(token) {
    return invoke(this, 'join', () => [text('join', 'token', token)], { async: true, wrap: (inner) => this._doc(inner) });
  }
  /**
   * A new document from Automerge's format (`Automerge.save()`, an
   * automerge-repo export), content and history; encrypted and owned by
   * this device from now on.
   */
  import(bytes) {
    return invoke(this, 'importAutomerge', () => [bytesArg('import', bytes)], {
      async: true,
      wrap: (inner) => this._doc(inner),
    });
  }
  /** Restore a document from `doc.backup(passphrase)`. */
  restore(backup, passphrase) {
    return invoke(this, 'import', () => [bytesArg('restore', backup), text('restore', 'passphrase', passphrase)], {
      async: true,
      wrap: (inner) => this._doc(inner),
    });
  }
  /** The document with this id, loaded from storage if it is not in memory yet. */
  find(id) {
    return invoke(this, 'find', () => [text('find', 'id', id)], { async: true, wrap: (inner) => this._doc(inner) });
  }

  /**
   * Sync through these relays (kept, to reconnect after a reload) and
   * reach other browsers as `options` says: `{direct, iceServers,
   * icePolicy}` (see `ConnectOptions`). Resolves with the relays' member ids.
   */
  connect(relays, options) {
    const args = () => {
      if (!(Array.isArray(relays) && relays.every((r) => typeof r === 'string'))) {
        throw new InvalidArgumentError('connect: relays must be an array of multiaddr strings');
      }
      const urls = options?.iceServers;
      if (options !== undefined && (options === null || typeof options !== 'object' || (urls !== undefined && !(Array.isArray(urls) && urls.every((u) => typeof u === 'string'))))) {
        throw new InvalidArgumentError('connect: options must be an object; options.iceServers an array of URL strings');
      }
      for (const r of relays) this._relays.add(r);
      if (options !== undefined && this._connectOptions === undefined) this._connectOptions = options;
      return [relays, options];
    };
    if (this.isGuest) {
      // The tab holding the repo holds the connections.
      try { args(); } catch (e) { return Promise.reject(e); }
      return this._net.connect(relays, options, NetworkError);
    }
    return invoke(this, 'connect', args, { async: true }).then((ids) => {
      this._net?.connected(ids);
      return ids;
    });
  }

  /** Disconnect from every relay and peer (work offline); `connect` again to catch up. */
  disconnect() {
    this._relays.clear();
    // A guest's connections are the host's, which other tabs use too.
    if (this.isGuest) return Promise.resolve();
    return invoke(this, 'disconnect', none, { async: true });
  }

  /** Save what is pending, disconnect and let another tab in. */
  async close() {
    // A reload in progress reopens this repo first; then it is closed.
    const pending = live();
    if (pending) await pending;
    openRepos.delete(this);
    this._net?.close();
    return invoke(this, 'close', none, { async: true });
  }

  /** Call `listener({reason})` once the repo is closed (`"closed"`). */
  onClose(listener) { return this._listeners.add(this, 'onClose', listener); }
  /** Follow connections, sessions and paths. */
  onNetwork(listener) { return this._listeners.add(this, 'onNetwork', listener); }
  /**
   * Document events, `{type: 'reloaded', message}` after the repo was
   * reloaded from storage following an internal error, and `{type:
   * 'promoted', message}` when this tab came to hold the repo.
   */
  onEvent(listener) {
    const stop = this._listeners.add(this, 'onEvent', listener);
    this._reloaded.add(listener);
    return () => { this._reloaded.delete(listener); stop(); };
  }

  /** Release the module's handle now instead of when it is collected. */
  free() { try { this._inner.free(); } catch { /* already freed or gone */ } }
}
if (Symbol.dispose) {
  Repo.prototype[Symbol.dispose] = Repo.prototype.free;
}

/**
 * Open a repository: documents in IndexedDB (the default; `name` picks the
 * repo, shared by every tab of the origin) or in memory, and relays to
 * sync through.
 * @param {{storage?: 'indexeddb' | 'memory', name?: string, relays?: string[], connect?: {direct?: boolean, iceServers?: string[], icePolicy?: 'all' | 'relay'}}} [options]
 */
export function openRepo(options = {}) {
  return Repo.open(options);
}
