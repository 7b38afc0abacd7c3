// synkro boards: shared notes and tasks, end-to-end encrypted, offline
// first. Documents live in this browser (IndexedDB) and sync through the
// relay that served this page; the relay stores only ciphertext.
import { openRepo } from 'synkro';
import './style.css';
import { BoardView, initBoard } from './board.js';
import { Connection } from './connection.js';
import { colorFor } from './presence.js';
import { el, modal, shortId, toast } from './dom.js';

const $ = (id) => document.getElementById(id);
const main = $('main');

const app = {
  repo: null,
  net: null,
  me: null,
  view: null,
  titles: new Map(),
  /** Boards whose title is being read from storage. */
  titleLoads: new Set(),
};

boot().catch((e) => fatal(e));

async function boot() {
  // Every tab of this browser shares the boards: one holds the storage
  // and the connection, the others see its changes live and hand it theirs.
  const repo = await openRepo();
  app.repo = repo;
  app.me = await whoAmI(repo.memberId);
  $('me').textContent = app.me.name;
  $('me').style.setProperty('--who', app.me.color);
  $('me').addEventListener('click', rename);

  app.net = new Connection(repo, (state) => showStatus(state));
  $('offline-toggle').addEventListener('click', () => {
    app.net.setWorkOffline(!app.net.workOffline);
    $('offline-toggle').textContent = app.net.workOffline ? 'Go online' : 'Work offline';
    $('offline-toggle').setAttribute('aria-pressed', String(app.net.workOffline));
  });
  app.net.start();

  repo.onEvent((e) => {
    if (e.type === 'doc-added') renderList();
    if (e.type === 'access-changed' && app.view?.doc.id === e.doc) app.view.refresh();
  });
  $('new-board').addEventListener('click', () => newBoard());
  $('import-file').addEventListener('change', importBackup);
  $('menu-toggle').addEventListener('click', () => toggleMenu());
  window.addEventListener('hashchange', route);
  window.addEventListener('pagehide', () => app.view?.close());
  await route();
}

/** The user's name and colour (asked once, kept in this browser). */
async function whoAmI(id) {
  const saved = JSON.parse(localStorage.getItem('synkro-boards/me') ?? 'null');
  if (saved?.name) return { id, name: saved.name, color: saved.color ?? colorFor(id) };
  const name = await askName('Welcome! What should others call you?', '');
  const me = { id, name, color: colorFor(id) };
  localStorage.setItem('synkro-boards/me', JSON.stringify({ name: me.name, color: me.color }));
  return me;
}

async function askName(title, current) {
  const input = el('input', { name: 'name', 'aria-label': 'Your name', value: current, maxlength: 40, required: true, autocomplete: 'nickname', placeholder: 'Your name' });
  const answer = await modal(title, [
    el('p', {}, 'Your name is shown to the people you share boards with. It never leaves your devices unencrypted.'),
    input,
  ], [{ label: 'Continue', value: 'ok', primary: true }]);
  const name = input.value.trim();
  return answer && name ? name : current || `Guest ${Math.floor(Math.random() * 900 + 100)}`;
}

async function rename() {
  const name = await askName('Your name', app.me.name);
  app.me = { ...app.me, name };
  localStorage.setItem('synkro-boards/me', JSON.stringify({ name, color: app.me.color }));
  $('me').textContent = name;
  app.view?.rename(app.me);
}

// --- routing: #doc=<id> shows a board, #join=<token> joins one -----------

async function route() {
  const params = new URLSearchParams(location.hash.slice(1));
  toggleMenu(false);
  if (params.has('join')) {
    const token = params.get('join');
    // The invitation is a secret: keep it out of the history.
    history.replaceState(null, '', location.pathname + location.search);
    try {
      const doc = await app.repo.join(token);
      toast('Joined. The board syncs from the relay and is decrypted here.');
      location.hash = `doc=${doc.id}`;
    } catch (e) {
      toast(`This invite link does not work: ${e.message}`, 'error');
      showHome();
    }
    return;
  }
  if (params.has('doc')) {
    try {
      return showBoard(await app.repo.find(params.get('doc')));
    } catch (e) {
      toast(`No such board here: ${e.message}`, 'error');
    }
  }
  const first = app.repo.list()[0];
  if (first) location.hash = `doc=${first}`;
  else showHome();
}

function showHome() {
  app.view?.close();
  app.view = null;
  main.replaceChildren(el('div', { class: 'home' }, [
    el('h1', {}, 'Boards you share, encrypted end to end'),
    el('p', {}, 'Make a board for a trip, a project or a shopping list, and invite people with a link. It works offline; changes meet when you are back online. The relay in the middle stores only ciphertext.'),
    el('button', { class: 'button primary big', type: 'button', onclick: () => newBoard() }, 'Create your first board'),
  ]));
  renderList();
}

function showBoard(doc) {
  if (app.view?.doc.id === doc.id) return;
  app.view?.close();
  app.view = new BoardView(doc, app.me, {
    share: () => share(doc),
    members: () => members(doc),
    exportBackup: () => exportBackup(doc),
    changed: (title) => {
      if (typeof title === 'string' && app.titles.get(doc.id) !== title) {
        app.titles.set(doc.id, title);
        renderList();
      }
    },
    presence: (people) => renderPresence(people),
  });
  main.replaceChildren(app.view.root);
  renderList();
}

async function newBoard() {
  try {
    const doc = await app.repo.create();
    initBoard(doc, 'Untitled board', app.me);
    await doc.flush();
    location.hash = `doc=${doc.id}`;
    // Focus the title so the user can name the board right away.
    requestAnimationFrame(() => {
      const title = main.querySelector('.board-title');
      title?.focus();
      title?.select();
    });
  } catch (e) {
    toast(`Could not create a board: ${e.message}`, 'error');
  }
}

function renderList() {
  const current = app.view?.doc.id;
  const items = app.repo.list().map((id) => {
    const title = app.titles.get(id);
    if (title === undefined && !app.titleLoads.has(id)) {
      // Boards load from storage on first use: the title comes when it has.
      app.titleLoads.add(id);
      app.repo.find(id).then((doc) => {
        const t = doc.doc().title;
        if (typeof t === 'string') {
          app.titles.set(id, t);
          renderList();
        }
      }).catch(() => {}).finally(() => app.titleLoads.delete(id));
    }
    const label = typeof title === 'string' ? title || 'Untitled board' : 'Arriving…';
    return el('li', {}, el('a', { href: `#doc=${id}`, 'aria-current': id === current ? 'page' : undefined }, label));
  });
  $('board-list').replaceChildren(...items);
}

/** How we reach someone: 'direct' (browser to browser), 'relayed' or 'offline'. */
function pathTo(id) {
  try {
    return app.repo.connection(id);
  } catch {
    return 'offline'; // not connected to any relay yet
  }
}

const PATH_LABELS = { direct: 'connected directly', relayed: 'through the relay', offline: 'via the relay’s copy' };

function renderPresence(people) {
  $('presence').replaceChildren(...people.map((p) => {
    const path = p.you ? null : pathTo(p.id);
    const label = p.you ? `${p.name} (you)` : `${p.name}, ${PATH_LABELS[path]}`;
    return el('span', { class: `avatar${path === 'direct' ? ' direct' : ''}`, role: 'listitem', title: label, 'aria-label': label, style: `--who: ${p.color}` },
      p.name.trim().charAt(0).toUpperCase() || '?');
  }));
}

function toggleMenu(open) {
  const sidebar = $('sidebar');
  const show = open ?? !sidebar.classList.contains('open');
  sidebar.classList.toggle('open', show);
  $('menu-toggle').setAttribute('aria-expanded', String(show));
}

// --- the status indicator -------------------------------------------------

const STATUS_TEXT = {
  starting: 'Starting…',
  offline: 'Offline — saved on this device',
  connecting: 'Connecting…',
  unreachable: 'Relay unreachable — saved on this device',
  syncing: 'Syncing…',
  synced: 'Synced',
};

function showStatus(state) {
  const status = $('status');
  status.dataset.state = state;
  status.querySelector('.label').textContent = STATUS_TEXT[state] ?? state;
  status.title = state === 'synced' ? 'Every change is stored, encrypted, on the relay.' : '';
}

// --- dialogs --------------------------------------------------------------

async function share(doc) {
  const role = el('select', { name: 'role', 'aria-label': 'Role' }, [
    el('option', { value: 'write' }, 'Can edit'),
    el('option', { value: 'read' }, 'Can view'),
    el('option', { value: 'admin' }, 'Can edit and manage members'),
  ]);
  const link = el('input', { class: 'invite-link', readonly: true, 'aria-label': 'Invite link', placeholder: 'Create a link first' });
  const note = el('p', { class: 'hint' }, 'Anyone with the link joins with this role. Its secret part is after the #: browsers never send that to a server, so the relay cannot read it either.');
  const relayState = el('p', { class: 'hint', role: 'status' });
  const create = async () => {
    try {
      const token = await doc.share(role.value);
      link.value = `${location.origin}${location.pathname}#join=${token}`;
      link.select();
      if (app.net.relayId) {
        relayState.textContent = 'Making sure the relay has the board…';
        doc.whenDurableOn(app.net.relayId, 15000)
          .then(() => { relayState.textContent = '✓ The board is on the relay: it can be opened even while you are offline.'; })
          .catch(() => { relayState.textContent = 'The relay is not reachable now; the link works once you are back online.'; });
      } else {
        relayState.textContent = 'You are offline: the link works once you are back online.';
      }
    } catch (e) {
      toast(`Could not create a link: ${e.message}`, 'error');
    }
  };
  const copy = async () => {
    if (!link.value) await create();
    try {
      await navigator.clipboard.writeText(link.value);
      toast('Invite link copied');
    } catch {
      link.select();
      toast('Select the link and copy it');
    }
  };
  await modal('Share this board', [
    el('label', { class: 'field' }, ['Role ', role]),
    el('div', { class: 'row' }, [link]),
    note,
    relayState,
  ], [
    { label: 'Create link', value: '', submit: false, primary: true, onclick: create },
    { label: 'Copy', value: '', submit: false, onclick: copy },
    { label: 'Done', value: 'done' },
  ]);
}

function members(doc) {
  const list = el('ul', { class: 'members', 'aria-label': 'Members' });
  const render = () => {
    let info;
    try {
      info = doc.info();
    } catch (e) {
      list.replaceChildren(el('li', {}, e.message));
      return;
    }
    const admin = info.myRole === 'admin';
    list.replaceChildren(...info.members.map(({ member, role }) => {
      const you = member === app.me.id;
      const relay = role === 'replicate';
      const name = relay ? 'Relay' : app.view?.nameOf(member) ?? shortId(member);
      const label = relay ? 'stores encrypted copies, cannot read' : { admin: 'admin', write: 'can edit', read: 'can view' }[role] ?? role;
      const revoke = admin && !you && !relay
        ? el('button', { class: 'button danger small', type: 'button', 'aria-label': `Remove ${name}` }, 'Remove')
        : null;
      revoke?.addEventListener('click', async () => {
        if (!confirm(`Remove ${name}? They keep what they have, but will not receive anything new: the board's key is replaced.`)) return;
        try {
          await doc.revoke(member);
          toast(`${name} was removed and the key rotated`);
          render();
        } catch (e) {
          toast(`Could not remove ${name}: ${e.message}`, 'error');
        }
      });
      return el('li', { class: 'member' }, [
        el('span', { class: 'avatar small', style: `--who: ${relay ? '#868e96' : colorFor(member)}`, 'aria-hidden': 'true' }, relay ? '⇄' : name.charAt(0).toUpperCase()),
        el('span', { class: 'member-name' }, [name, you ? ' (you)' : '', el('small', {}, ` ${shortId(member)}`)]),
        el('span', { class: `role role-${role}` }, label),
        revoke,
      ]);
    }));
  };
  render();
  return modal('Members', [list], [{ label: 'Close', value: 'close', primary: true }]);
}

async function exportBackup(doc) {
  const pass = el('input', { type: 'password', name: 'passphrase', 'aria-label': 'Passphrase', minlength: 8, required: true, autocomplete: 'new-password' });
  const answer = await modal('Export an encrypted backup', [
    el('p', {}, 'The file holds the board and its keys, encrypted with this passphrase. Keep both; without the passphrase nobody can open it.'),
    pass,
  ], [{ label: 'Cancel', value: '' , submit: false, onclick: (e) => e.target.closest('dialog').close() }, { label: 'Download', value: 'ok', primary: true }]);
  if (answer !== 'ok') return;
  try {
    const bytes = await doc.backup(pass.value);
    const title = (app.titles.get(doc.id) || 'board').replace(/[^\w.-]+/g, '-').slice(0, 40);
    const a = el('a', { href: URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' })), download: `${title}.synkro` });
    document.body.append(a);
    a.click();
    a.remove();
    toast('Backup downloaded');
  } catch (e) {
    toast(`Could not export: ${e.message}`, 'error');
  }
}

async function importBackup(event) {
  const file = event.target.files?.[0];
  event.target.value = '';
  if (!file) return;
  const pass = el('input', { type: 'password', name: 'passphrase', 'aria-label': 'Passphrase', required: true });
  const answer = await modal(`Import ${file.name}`, [el('p', {}, 'The passphrase the backup was made with:'), pass],
    [{ label: 'Import', value: 'ok', primary: true }]);
  if (answer !== 'ok') return;
  try {
    const doc = await app.repo.restore(new Uint8Array(await file.arrayBuffer()), pass.value);
    toast('Board restored');
    location.hash = `doc=${doc.id}`;
  } catch (e) {
    toast(`Could not import: ${e.message}`, 'error');
  }
}

function fatal(error, title = 'Something went wrong') {
  console.error(error);
  main.replaceChildren(el('div', { class: 'home' }, [
    el('h1', {}, title),
    el('p', { role: 'alert' }, error.message),
  ]));
}
