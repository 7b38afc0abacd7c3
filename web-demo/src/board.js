// One board: a collaborative title, a task list and shared notes, with the
// people editing it right now.
import { ImmutableString } from 'synkro';
import { bindText, toCodePoints } from './text.js';
import { Presence } from './presence.js';
import { Cursors } from './cursors.js';
import { el, shortId } from './dom.js';

/** A new board's content. */
export function initBoard(doc, title, me) {
  doc.change((d) => {
    d.title = title;
    d.notes = '';
    d.tasks = [];
    d.people = { [me.id]: { name: new ImmutableString(me.name), color: new ImmutableString(me.color) } };
  }, { message: 'new board' });
}

export class BoardView {
  /**
   * @param doc the board's DocHandle
   * @param me `{ id, name, color }`
   * @param actions `{ share(), members(), exportBackup(), changed() }`
   */
  constructor(doc, me, actions) {
    this.doc = doc;
    this.me = me;
    this.actions = actions;
    this.root = el('section', { class: 'board', 'aria-label': 'Board' });
    this.presence = new Presence(doc, me, () => this.#renderPresence());
    this.stopChanges = doc.on('change', () => this.#scheduleRefresh());
    this.ready = false;
    this.#build();
    this.refresh();
  }

  close() {
    this.presence.close();
    this.stopChanges();
  }

  /** Whether this device may edit (writer or admin). */
  canWrite() {
    const role = this.#info()?.myRole;
    return role === 'write' || role === 'admin';
  }

  #info() {
    try {
      return this.doc.info();
    } catch {
      return null;
    }
  }

  #value() {
    try {
      return this.doc.doc();
    } catch {
      return {};
    }
  }

  #build() {
    this.waiting = el('div', { class: 'empty', role: 'status' }, [
      el('div', { class: 'spinner', 'aria-hidden': 'true' }),
      el('p', {}, 'Fetching this board from the relay… It is decrypted here, in your browser.'),
    ]);
    this.revoked = el('div', { class: 'banner warn', role: 'alert', hidden: true },
      'The owner removed your access to this board. You keep what you had; new edits no longer reach you.');
    this.readonly = el('div', { class: 'banner', hidden: true }, 'You can view this board; only editors can change it.');

    this.title = el('input', { class: 'board-title', 'aria-label': 'Board title', placeholder: 'Untitled board', maxlength: 200 });
    this.here = el('p', { class: 'here', 'aria-live': 'polite' });
    const toolbar = el('div', { class: 'toolbar' }, [
      el('button', { class: 'button primary', type: 'button', onclick: () => this.actions.share() }, 'Share'),
      el('button', { class: 'button', type: 'button', onclick: () => this.actions.members() }, 'Members'),
      el('button', { class: 'button', type: 'button', onclick: () => this.actions.exportBackup() }, 'Export backup'),
    ]);
    const head = el('div', { class: 'board-head' }, [el('div', { class: 'title-block' }, [this.title, this.here]), toolbar]);

    this.taskList = el('ul', { class: 'tasks', 'aria-label': 'Tasks' });
    this.newTask = el('input', { class: 'new-task', placeholder: 'Add a task and press Enter', 'aria-label': 'New task' });
    this.newTask.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && this.newTask.value.trim()) {
        this.#addTask(this.newTask.value.trim());
        this.newTask.value = '';
      }
    });
    this.progress = el('span', { class: 'progress' });
    const tasks = el('section', { class: 'panel', 'aria-labelledby': 'tasks-heading' }, [
      el('h2', { id: 'tasks-heading' }, ['Tasks ', this.progress]),
      this.newTask,
      this.taskList,
    ]);

    this.notes = el('textarea', { class: 'notes', 'aria-label': 'Notes', placeholder: 'Shared notes: everyone here types together.' });
    const notesWrap = el('div', { class: 'notes-wrap' }, [this.notes]);
    const notes = el('section', { class: 'panel', 'aria-labelledby': 'notes-heading' }, [
      el('h2', { id: 'notes-heading' }, 'Notes'),
      notesWrap,
    ]);
    this.cursors = new Cursors(this.notes);

    this.content = el('div', { class: 'board-body', hidden: true }, [head, this.readonly, el('div', { class: 'columns' }, [tasks, notes])]);
    this.root.append(this.revoked, this.waiting, this.content);

    const caret = () => {
      const v = this.notes.value;
      this.presence.setFocus({
        field: 'notes',
        start: toCodePoints(v, this.notes.selectionStart),
        end: toCodePoints(v, this.notes.selectionEnd),
      });
    };
    for (const ev of ['select', 'keyup', 'click', 'input', 'focus']) this.notes.addEventListener(ev, caret);
    document.addEventListener('selectionchange', () => {
      if (document.activeElement === this.notes) caret();
    });
    this.title.addEventListener('focus', () => this.presence.setFocus({ field: 'title' }));
    for (const f of [this.notes, this.title, this.newTask]) {
      f.addEventListener('blur', () => this.presence.setFocus(null));
    }
  }

  #scheduleRefresh() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = 0;
      this.refresh();
    });
  }

  refresh() {
    const value = this.#value();
    const info = this.#info();
    const arrived = typeof value.title === 'string' || Array.isArray(value.tasks);
    this.revoked.hidden = !(info && info.myRole == null && this.ready);
    if (!arrived) {
      this.waiting.hidden = false;
      this.content.hidden = true;
      return;
    }
    if (!this.ready) {
      this.ready = true;
      this.titleBinding = bindText(this.title, this.doc, 'title');
      this.notesBinding = bindText(this.notes, this.doc, 'notes');
      this.#claimName();
    }
    this.waiting.hidden = true;
    this.content.hidden = false;
    this.titleBinding.refresh();
    this.notesBinding.refresh();
    const writable = this.canWrite();
    this.readonly.hidden = writable || info?.myRole == null;
    for (const f of [this.title, this.notes, this.newTask]) f.readOnly = !writable;
    this.#renderPresence(); // and the tasks, with who is editing which
    this.actions.changed(value.title);
  }

  /** Names of the members, from the board and from presence. */
  names() {
    const people = this.#value().people ?? {};
    const names = new Map(Object.entries(people).map(([id, p]) => [id, p?.name]));
    for (const p of this.presence.list()) names.set(p.id, p.name);
    names.set(this.me.id, this.me.name);
    return names;
  }

  #claimName() {
    const mine = this.#value().people?.[this.me.id];
    if (!this.canWrite() || (mine?.name === this.me.name && mine?.color === this.me.color)) return;
    try {
      this.doc.change((d) => {
        d.people ??= {};
        d.people[this.me.id] = { name: new ImmutableString(this.me.name), color: new ImmutableString(this.me.color) };
      });
    } catch {
      // Not a writer after all: the name travels with presence only.
    }
  }

  rename(me) {
    this.me = me;
    this.presence.me = me;
    this.presence.send();
    this.#claimName();
    this.#renderPresence();
  }

  #addTask(text) {
    const id = new ImmutableString(crypto.randomUUID().slice(0, 8));
    this.doc.change((d) => {
      d.tasks ??= [];
      d.tasks.push({ id, text: new ImmutableString(text), done: false, by: new ImmutableString(this.me.id) });
    });
  }

  /** Change task `id` with `fn(tasks, index)`, if it is still there. */
  #editTask(id, fn) {
    this.doc.change((d) => {
      const i = (d.tasks ?? []).findIndex((t) => t?.id === id);
      if (i >= 0) fn(d.tasks, i);
    });
  }

  #renderTasks(tasks, people, writable) {
    const rows = new Map([...this.taskList.children].map((li) => [li.dataset.id, li]));
    const editing = new Map(this.presence.list().filter((p) => p.focus?.field === 'task').map((p) => [p.focus.id, p]));
    let done = 0;
    let previous = null;
    for (const task of tasks) {
      if (!task || typeof task.id !== 'string') continue;
      if (task.done) done++;
      let li = rows.get(task.id);
      if (!li) li = this.#taskRow(task.id);
      rows.delete(task.id);
      const [check, text, meta] = [li.querySelector('input[type=checkbox]'), li.querySelector('.task-text'), li.querySelector('.task-meta')];
      check.checked = !!task.done;
      check.disabled = !writable;
      text.readOnly = !writable;
      if (document.activeElement !== text && text.value !== String(task.text ?? '')) text.value = String(task.text ?? '');
      li.classList.toggle('done', !!task.done);
      const author = people[task.by]?.name ?? (task.by === this.me.id ? this.me.name : null);
      const other = editing.get(task.id);
      meta.textContent = other ? `${other.name} is editing` : author ? `added by ${author}` : '';
      li.style.setProperty('--who', other?.color ?? 'transparent');
      li.classList.toggle('being-edited', !!other);
      li.querySelector('.delete').hidden = !writable;
      const want = previous ? previous.nextSibling : this.taskList.firstChild;
      if (want !== li) this.taskList.insertBefore(li, want);
      previous = li;
    }
    for (const li of rows.values()) li.remove();
    const total = this.taskList.children.length;
    this.progress.textContent = total ? `${done}/${total} done` : '';
  }

  #taskRow(id) {
    const check = el('input', { type: 'checkbox', 'aria-label': 'Done' });
    check.addEventListener('change', () => this.#editTask(id, (tasks, i) => { tasks[i].done = check.checked; }));
    const text = el('input', { class: 'task-text', 'aria-label': 'Task' });
    // A task's text is one value (the last edit wins), not shared text.
    text.addEventListener('input', () => this.#editTask(id, (tasks, i) => { tasks[i].text = new ImmutableString(text.value); }));
    text.addEventListener('focus', () => this.presence.setFocus({ field: 'task', id }));
    text.addEventListener('blur', () => this.presence.setFocus(null));
    const del = el('button', { class: 'icon-button delete', type: 'button', 'aria-label': 'Delete task', title: 'Delete task' }, '×');
    del.addEventListener('click', () => this.#editTask(id, (tasks, i) => tasks.deleteAt(i)));
    return el('li', { class: 'task', 'data-id': id }, [
      check,
      el('div', { class: 'task-main' }, [text, el('span', { class: 'task-meta' })]),
      del,
    ]);
  }

  #renderPresence() {
    const others = this.presence.list();
    const names = [`${this.me.name} (you)`, ...others.map((p) => p.name)];
    this.here.textContent = others.length ? `Here now: ${names.join(', ')}` : `Only you are here. Share the board to work on it together.`;
    this.cursors.render(
      others
        .filter((p) => p.focus?.field === 'notes')
        .map((p) => ({ name: p.name, color: p.color, start: p.focus.start, end: p.focus.end })),
    );
    this.actions.presence?.([{ id: this.me.id, name: this.me.name, color: this.me.color, you: true }, ...others]);
    // Task rows show who is editing them.
    if (this.ready) {
      const v = this.#value();
      this.#renderTasks(Array.isArray(v.tasks) ? v.tasks : [], v.people ?? {}, this.canWrite());
    }
  }

  /** Short display name for a member id. */
  nameOf(id) {
    return this.names().get(id) ?? `member ${shortId(id)}`;
  }
}
