// Who is here now: every open copy of a board broadcasts a small presence
// message (name, colour, what it is editing) to the members online, every
// few seconds and whenever the focus moves. Nothing of it is stored.

const HEARTBEAT_MS = 3000;
const GONE_AFTER_MS = 10000;

export class Presence {
  /**
   * @param doc a synkro DocHandle
   * @param me `{ id, name, color }`
   * @param onUpdate called with the list of others whenever it changes
   */
  constructor(doc, me, onUpdate) {
    this.doc = doc;
    this.me = me;
    this.onUpdate = onUpdate;
    this.focus = null;
    this.others = new Map();
    this.stop = doc.onBroadcast(({ from, value }) => this.#received(from, value));
    this.timer = setInterval(() => {
      this.#expire();
      this.send();
    }, HEARTBEAT_MS);
    this.send();
  }

  /** What this user is editing now (`null`, `{field: 'notes', start, end}`, `{field: 'task', id}`...). */
  setFocus(focus) {
    if (JSON.stringify(focus) === JSON.stringify(this.focus)) return;
    this.focus = focus;
    this.send();
  }

  send(extra = {}) {
    const value = { name: this.me.name, color: this.me.color, focus: this.focus, ...extra };
    this.doc.broadcast(value).catch(() => {
      // Offline, or no longer a member: presence is best effort.
    });
  }

  list() {
    return [...this.others.entries()].map(([id, p]) => ({ id, ...p }));
  }

  close() {
    this.send({ left: true });
    clearInterval(this.timer);
    this.stop();
  }

  #received(from, value) {
    if (from === this.me.id || typeof value !== 'object' || value === null) return;
    if (value.left) {
      if (this.others.delete(from)) this.onUpdate(this.list());
      return;
    }
    const known = this.others.has(from);
    this.others.set(from, {
      name: typeof value.name === 'string' ? value.name.slice(0, 40) : 'Someone',
      color: /^#[0-9a-f]{6}$/i.test(value.color) ? value.color : '#868e96',
      focus: value.focus && typeof value.focus === 'object' ? value.focus : null,
      seen: Date.now(),
    });
    // A newcomer learns about us now rather than at our next heartbeat.
    if (!known) this.send();
    this.onUpdate(this.list());
  }

  #expire() {
    const now = Date.now();
    let changed = false;
    for (const [id, p] of this.others) {
      if (now - p.seen > GONE_AFTER_MS) {
        this.others.delete(id);
        changed = true;
      }
    }
    if (changed) this.onUpdate(this.list());
  }
}

const PALETTE = ['#e03131', '#2f9e44', '#1971c2', '#f08c00', '#9c36b5', '#0c8599', '#e8590c', '#5f3dc4'];

/** A stable colour for a member id. */
export function colorFor(id) {
  let h = 0;
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}
