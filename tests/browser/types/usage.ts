// A typical program against the package's types: compiled with `tsc
// --noEmit` by package.test.mjs, so a wrong or missing declaration fails.
import { openRepo, SynkroError, PanicError, type Patch, type Json, type NetworkEvent } from 'synkro';

export async function app(relay: string): Promise<Json> {
  const repo = await openRepo({ name: 'typed', relays: [relay], takeOver: true });
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
  repo.onClose(({ reason }) => console.log(reason === 'taken-over'));
  repo.onEvent((e) => {
    if (e.type === 'reloaded') console.log(e.message);
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
