// A small React app on `synkro/react`, built by Vite in react.test.mjs: a
// shared list with a vote counter, presence and the relay's sync status.
// Written without JSX so that it needs no compiler plugin.
import { createElement as h, StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { openRepo, Counter } from 'synkro';
import { RepoContext, useDocument, useHandle, usePresence, useRepo, useSyncStatus } from 'synkro/react';

let renders = 0;

function List({ id, relayId, name }) {
  const [doc, change] = useDocument(id);
  const handle = useHandle(id);
  const [others] = usePresence(id, { name }, { timeoutMs: 3000 });
  const status = useSyncStatus(relayId);
  const repo = useRepo();
  renders++;
  if (!doc) return h('p', { id: 'loading' }, 'Loading…');
  return h('main', null,
    h('h1', { id: 'title' }, doc.title),
    h('ul', { id: 'items' }, doc.items.map((item, i) => h('li', { key: i }, item))),
    h('button', { id: 'add', onClick: () => change((d) => { d.items.push(`item ${d.items.length + 1}`); }) }, 'Add'),
    h('button', { id: 'vote', onClick: () => change((d) => { d.votes.increment(); }) }, `Votes: ${doc.votes.value}`),
    h('p', { id: 'others' }, Object.values(others).map((p) => p.name).sort().join(', ')),
    h('p', { id: 'status' }, status?.complete ? 'synced' : 'syncing'),
    h('p', { id: 'handle' }, handle?.id === id && repo.memberId ? 'ready' : ''),
  );
}

async function main() {
  const params = new URLSearchParams(location.search);
  const relay = params.get('relay');
  const repo = await openRepo({ storage: 'memory', relays: [relay] });
  const [relayId] = await repo.connect([relay]);
  let handle;
  if (location.hash.length > 1) {
    handle = await repo.join(decodeURIComponent(location.hash.slice(1)));
  } else {
    handle = await repo.create();
    handle.change((d) => { d.title = 'Groceries'; d.items = ['milk']; d.votes = new Counter(0); });
    await handle.whenDurableOn(relayId, 20000);
  }
  window.app = { repo, handle, relayId, renders: () => renders };
  createRoot(document.getElementById('root')).render(
    h(StrictMode, null, h(RepoContext.Provider, { value: repo }, h(List, { id: handle.id, relayId, name: params.get('name') }))),
  );
}

main().catch((e) => { document.body.textContent = `failed: ${e.message}`; console.error(e); });
