// A typical program against the package's types: compiled with `tsc
// --noEmit` by package.test.mjs, so a wrong or missing declaration fails.
import { openRepo, ready, Repo, SynkroError, PanicError, Counter, ImmutableString, splice, updateText, type Patch, type Json, type NetworkEvent, type DocHandle } from 'synkro';

export async function app(relay: string): Promise<Json> {
  const repo = await openRepo({ name: 'typed', relays: [relay] });
  console.log(repo.isGuest);
  // Optional arguments may be left out.
  const relays: string[] = await repo.connect([relay]);
  await (await doc0(repo)).whenDurableOn(relays[0] ?? '');
  const doc = await repo.create();
  doc.set('title', 'Lisbon');
  doc.insert('todos', 0, { text: 'book flights', done: false });
  doc.setText('notes', 'hello');
  doc.splice('notes', 5, 0, ' world');
  doc.increment('votes', 1);
  const stop: () => void = doc.onChange((patches: Patch[]) => {
    for (const p of patches) if (p.action === 'splice') console.log(p.index, p.text);
  });
  doc.onBroadcast(({ from, value }) => console.log(from, value));
  repo.onNetwork((e: NetworkEvent) => {
    if (e.type === 'session-opened') console.log(e.peer, e.relayed);
  });
  repo.onClose(({ reason }) => console.log(reason === 'closed'));
  repo.onEvent((e) => {
    if (e.type === 'reloaded' || e.type === 'promoted') console.log(e.message);
    else if (e.type === 'storage') console.log(e.state === 'full');
    else console.log(e.doc);
  });
  const storage: 'ok' | 'full' | 'failed' = repo.storageState();
  const info = doc.info();
  const admins: string[] = info.members.filter((m) => m.role === 'admin').map((m) => m.member);
  const token: string = await doc.share('write');
  const status = repo.syncStatus(admins[0] ?? token);
  stop();
  try {
    doc.get('x/y');
  } catch (e) {
    if (e instanceof PanicError) console.log('reloaded; try again');
    else if (e instanceof SynkroError) console.log(e.code);
  }
  return status.complete ? doc.value() : null;
}

// @ts-expect-error: roles are 'read' | 'write' | 'admin'
export const wrongRole = (doc: import('synkro').DocHandle) => doc.share('owner');

function doc0(repo: import('synkro').Repo): Promise<import('synkro').DocHandle> {
  return repo.find(repo.list()[0] ?? '');
}

interface Trip {
  title: string;
  todos: { text: string; done: boolean }[];
  votes: Counter;
  notes?: string;
}

// The typed way: change(fn) on a draft, doc() to render, history, Automerge bytes.
export async function typed(repo: import('synkro').Repo): Promise<number> {
  const trip: DocHandle<Trip> = await repo.create<Trip>();
  trip.change((d) => {
    d.title = 'Lisbon';
    d.todos = [{ text: 'book flights', done: false }];
    d.votes = new Counter(0);
    d.notes = '';
  });
  trip.change((d) => {
    d.todos[0]!.done = true;
    d.todos.push({ text: 'pack', done: false });
    d.votes.increment();
    splice(d, ['title'], 0, 0, 'Trip to ');
    updateText(d, ['notes'], 'bring a hat');
  }, { message: 'plans' });
  const stop = trip.on('change', ({ doc, patches }) => console.log(doc.title, patches.length));
  const snapshot: Trip = trip.doc();
  const before: Trip = trip.view(trip.history()[0]?.hash ? [trip.history()[0]!.hash] : trip.heads());
  const bytes: Uint8Array = trip.export();
  const copy = await repo.import<Trip>(bytes);
  stop();
  // @ts-expect-error: the draft is typed
  trip.change((d) => { d.title = 3; });
  return snapshot.todos.length + before.todos.length + copy.doc().votes.value;
}

// Every other public method, optional arguments left out.
export async function everything(): Promise<void> {
  await ready();
  const repo: Repo = await Repo.open();
  const h: DocHandle = await repo.join('synkro1…');
  h.delete('x');
  h.splice('notes', 0, 1, '');
  await h.flush();
  await h.broadcast({ cursor: 1 });
  await h.revoke(repo.memberId);
  const backup: Uint8Array = await h.backup('passphrase');
  const restored: DocHandle = await repo.restore(backup, 'passphrase');
  restored.free();
  await h.whenDurableOn(repo.memberId);
  const stats = repo.stats();
  const problems: string[] = repo.loadProblems();
  const path: 'direct' | 'relayed' | 'offline' = repo.connection(repo.memberId);
  console.log(stats.loaded, problems.length, path, repo.closed);
  await repo.disconnect();
  await repo.close();
  repo.free();
  const c = new Counter();
  const s = new ImmutableString('id');
  console.log(c.value + Number(c), s.val, JSON.stringify(c));
}
