// synkro: local-first, end-to-end encrypted Automerge documents that sync.
// This wrapper loads the WebAssembly module once and turns failures into
// instances of the error classes below.
import init, { Repo, DocHandle, __setErrorFactory } from './synkro_wasm.js';

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

const classes = {
  'invalid-argument': InvalidArgumentError,
  'not-found': NotFoundError,
  access: AccessError,
  storage: StorageError,
  network: NetworkError,
};

let loading;
/**
 * Load the WebAssembly module (once). `openRepo` calls it; call it yourself
 * to pass a custom URL or `WebAssembly.Module`.
 */
export function ready(moduleOrPath) {
  if (!loading) {
    const arg = moduleOrPath === undefined ? undefined : { module_or_path: moduleOrPath };
    loading = init(arg).then(() => {
      __setErrorFactory((code, message) => {
        const Class = classes[code];
        return Class ? new Class(message) : new SynkroError(message, code);
      });
    });
  }
  return loading;
}

/**
 * Open a repository: documents in IndexedDB (the default; `name` picks the
 * repo, one tab at a time; `takeOver` asks a tab that has it to hand it
 * over) or in memory, and relays to sync through.
 * @param {{storage?: 'indexeddb' | 'memory', name?: string, takeOver?: boolean, relays?: string[]}} [options]
 */
export async function openRepo(options = {}) {
  await ready();
  const repo = await Repo.open(options);
  if (options.relays && options.relays.length) {
    await repo.connect(options.relays);
  }
  return repo;
}

export { Repo, DocHandle };
