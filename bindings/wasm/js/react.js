// React bindings of synkro (`import … from 'synkro/react'`): the repo in a
// context, documents as state that re-renders on every change, local or
// remote, presence and sync status. Built on `useSyncExternalStore`, so a
// render reads a consistent snapshot (`handle.doc()` is the same object
// until the document changes).
import { createContext, useCallback, useContext, useEffect, useState, useSyncExternalStore } from 'react';
import { NotFoundError } from './index.js';

/** Provide the repo: `<RepoContext.Provider value={repo}>…</RepoContext.Provider>`. */
export const RepoContext = createContext(null);

/** The repo of the nearest `RepoContext` provider. */
export function useRepo() {
  const repo = useContext(RepoContext);
  if (!repo) throw new Error('useRepo: render inside <RepoContext.Provider value={repo}>');
  return repo;
}

/** The handle of document `id` (`undefined` while it is being found, or without an id). */
export function useHandle(id) {
  const repo = useRepo();
  const [found, setFound] = useState(undefined);
  useEffect(() => {
    if (!id) return undefined;
    let live = true;
    repo.find(id).then(
      (handle) => { if (live) setFound({ id, handle }); },
      (e) => { if (live) { console.error(`synkro: document ${id} could not be opened`, e); setFound({ id, handle: undefined }); } },
    );
    return () => { live = false; };
  }, [repo, id]);
  return found?.id === id ? found.handle : undefined;
}

const noop = () => {};

/** The snapshot of `handle` now, or `undefined` while its content has not arrived. */
function snapshotOf(handle) {
  if (!handle) return undefined;
  try {
    return handle.doc();
  } catch (e) {
    if (e instanceof NotFoundError) return undefined;
    throw e;
  }
}

/**
 * Document `id` as `[doc, change]`: `doc` is its snapshot (`undefined`
 * while loading), re-rendered on every change; `change(fn, options)` edits
 * it as `handle.change` does.
 */
export function useDocument(id) {
  const handle = useHandle(id);
  const subscribe = useCallback((onChange) => (handle ? handle.on('change', onChange) : noop), [handle]);
  const getSnapshot = useCallback(() => snapshotOf(handle), [handle]);
  const doc = useSyncExternalStore(subscribe, getSnapshot);
  const change = useCallback((fn, options) => {
    if (!handle) throw new NotFoundError(`document ${id} is still loading; change it once useDocument returns it`);
    return handle.change(fn, options);
  }, [handle, id]);
  return [doc, change];
}

/**
 * Presence on document `id`: `[others, update]`, where `others` maps each
 * member online to the last value it sent (dropped after `timeoutMs` of
 * silence) and `update(value)` sends this member's (again every
 * `timeoutMs / 3`, so others keep seeing it).
 */
export function usePresence(id, initial, { timeoutMs = 15000 } = {}) {
  const handle = useHandle(id);
  const [others, setOthers] = useState({});
  const [mine, setMine] = useState(initial);
  useEffect(() => {
    if (!handle) return undefined;
    const seen = new Map();
    const publish = () => setOthers(Object.fromEntries([...seen].map(([m, s]) => [m, s.value])));
    const stop = handle.onBroadcast(({ from, value }) => {
      seen.set(from, { value, at: Date.now() });
      publish();
    });
    const sweep = setInterval(() => {
      let gone = false;
      for (const [m, s] of seen) if (Date.now() - s.at > timeoutMs) { seen.delete(m); gone = true; }
      if (gone) publish();
    }, Math.max(250, timeoutMs / 3));
    return () => { stop(); clearInterval(sweep); };
  }, [handle, timeoutMs]);
  useEffect(() => {
    if (!handle || mine === undefined) return undefined;
    const send = () => handle.broadcast(mine).catch(noop);
    send();
    const again = setInterval(send, Math.max(250, timeoutMs / 3));
    return () => clearInterval(again);
  }, [handle, mine, timeoutMs]);
  return [others, setMine];
}

/**
 * Where the repo stands with relay `peer` (its member id, as `connect`
 * resolves), refreshed as connections and documents change and every
 * `intervalMs`: `{synced, unsynced, pending, refused, complete, connected}`.
 */
export function useSyncStatus(peer, { intervalMs = 1000 } = {}) {
  const repo = useRepo();
  const read = useCallback(() => (peer ? repo.syncStatus(peer) : undefined), [repo, peer]);
  const [status, setStatus] = useState(read);
  useEffect(() => {
    const refresh = () => {
      const next = read();
      setStatus((prev) => (JSON.stringify(prev) === JSON.stringify(next) ? prev : next));
    };
    refresh();
    const stops = [repo.onNetwork(refresh), repo.onEvent(refresh)];
    const timer = setInterval(refresh, intervalMs);
    return () => { clearInterval(timer); for (const stop of stops) stop(); };
  }, [repo, read, intervalMs]);
  return status;
}
