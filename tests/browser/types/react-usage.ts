// The React bindings' types, as an app uses them (compiled with usage.ts).
import { createElement as h } from 'react';
import type { Counter, Repo } from 'synkro';
import { RepoContext, useDocument, useHandle, usePresence, useRepo, useSyncStatus } from 'synkro/react';

interface List { title: string; items: string[]; votes: Counter }

export function ListView({ id, relay }: { id: string; relay?: string }) {
  const [doc, change] = useDocument<List>(id);
  const handle = useHandle<List>(id);
  const [others, setMine] = usePresence<{ name: string }>(id, { name: 'me' });
  const status = useSyncStatus(relay);
  const repo: Repo = useRepo();
  if (!doc) return h('p', null, 'Loading…');
  const add = () => change((d) => { d.items.push('more'); });
  // @ts-expect-error: items hold strings
  const wrong = () => change((d) => { d.items.push(3); });
  setMine({ name: repo.memberId });
  return h('div', { onClick: add, onDoubleClick: wrong },
    doc.title, doc.votes.value, Object.keys(others).length, status?.complete, handle?.heads().length);
}

export const App = (repo: Repo) => h(RepoContext.Provider, { value: repo }, h(ListView, { id: 'x' }));
