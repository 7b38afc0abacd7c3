// The React bindings (`synkro/react`).
import type { Context } from 'react';
import type { DocHandle, Json, Repo, SyncStatus, ChangeOptions } from './index.js';

/** Provide the repo: `<RepoContext.Provider value={repo}>…</RepoContext.Provider>`. */
export const RepoContext: Context<Repo | null>;
/** The repo of the nearest `RepoContext` provider. */
export function useRepo(): Repo;
/** The handle of document `id` (`undefined` while it is being found, or without an id). */
export function useHandle<T = any>(id: string | undefined): DocHandle<T> | undefined;
/**
 * Document `id` as `[doc, change]`: `doc` is its snapshot (`undefined` while
 * loading), re-rendered on every change; `change(fn)` edits it.
 */
export function useDocument<T = any>(
  id: string | undefined,
): [T | undefined, (fn: (d: T) => void, options?: ChangeOptions) => T];
/**
 * Presence on document `id`: the last value each member online sent, and a
 * function to set this member's.
 */
export function usePresence<P extends Json = Json>(
  id: string | undefined,
  initial?: P,
  options?: { timeoutMs?: number },
): [Record<string, P>, (value: P) => void];
/** Where the repo stands with relay `peer` (`undefined` without a peer). */
export function useSyncStatus(peer: string | undefined, options?: { intervalMs?: number }): SyncStatus | undefined;
