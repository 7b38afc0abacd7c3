import { Repo, DocHandle } from './synkro_wasm.js';

export { Repo, DocHandle };
export type { Json, Patch, Broadcast, DocInfo, SyncStatus, Refused, RefusalReason, NetworkEvent, RepoEvent, CloseEvent } from './synkro_wasm.js';

/** Every error synkro throws; `code` says which kind. */
export class SynkroError extends Error {
  code: 'invalid-argument' | 'not-found' | 'access' | 'storage' | 'network' | 'panicked' | 'other';
}
export class InvalidArgumentError extends SynkroError {}
export class NotFoundError extends SynkroError {}
export class AccessError extends SynkroError {}
export class StorageError extends SynkroError {}
export class NetworkError extends SynkroError {}
/**
 * synkro hit an internal error (a panic) during the call, which did not
 * happen; the repos are reloaded from storage (listeners and relays kept)
 * and `onEvent` reports `{type: 'reloaded'}`. Edits not yet saved are lost.
 */
export class PanicError extends SynkroError {}

export interface OpenOptions {
  /** Where documents live: IndexedDB (default; survives reloads, one tab at a time) or memory. */
  storage?: 'indexeddb' | 'memory';
  /** Which repo of this origin (IndexedDB databases `synkro/<name>`); default "default". */
  name?: string;
  /**
   * If another tab has the repo open, ask it to hand it over (it saves its
   * pending edits, closes, and its `onClose` listeners hear `taken-over`)
   * instead of failing. Waits up to 10 s.
   */
  takeOver?: boolean;
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

/** Load the WebAssembly module once (openRepo calls it). */
export function ready(moduleOrPath?: string | URL | Request | WebAssembly.Module): Promise<void>;

/** Open a repository (and connect to `relays`). */
export function openRepo(options?: OpenOptions): Promise<Repo>;
