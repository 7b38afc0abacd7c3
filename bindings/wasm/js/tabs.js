// Every tab of an origin opens the same repo; the tab holding it (the
// host) writes storage and holds the network connections, the others are
// guests (see the crate's `home/tabs.rs` for edits and storage). This
// shares the host's connections with the guests, on the BroadcastChannel
// `synkro/<name>/net`: a guest's `connect(relays)` asks the host to
// connect them and resolves with the host's answer, and a guest's
// `syncStatus(peer)` and `connection(peer)` read what the host last told
// (it tells every half second, and at once when a tab asks), with the
// relays it holds, which a guest connects if it comes to hold the repo.

const TELL_MS = 500;
/** How often a guest looks whether it holds the repo now (a boolean read). */
const WATCH_MS = 50;
const CONNECT_TIMEOUT_MS = 15_000;

/** What a guest reports for a peer the host has told nothing about. */
const UNKNOWN = Object.freeze({ synced: 0, unsynced: 0, pending: 0, refused: [], complete: false, connected: false });

export class TabNet {
  /** `repo`: the npm package's `Repo` (`isGuest` says whether it is one now). */
  constructor(name, repo) {
    this.repo = repo;
    this.me = Math.random().toString(36).slice(2);
    this.next = 0;
    this.waiting = new Map();
    this.status = new Map();
    this.paths = new Map();
    /** Member ids of the relays this tab connected (as host). */
    this.relayIds = new Set();
    this.channel = typeof BroadcastChannel === 'undefined' ? null : new BroadcastChannel(`synkro/${name}/net`);
    if (this.channel) {
      this.channel.onmessage = (event) => this.heard(event.data);
      // While the module reloads after a crash, calls into it throw: the next tick tries again.
      const quietly = (f) => () => { try { f(); } catch { /* reloading */ } };
      this.timer = setInterval(quietly(() => this.tell()), TELL_MS);
      this.watch = setInterval(quietly(() => this.promoted()), WATCH_MS);
      this.post({ t: 'hello' });
    }
  }

  post(message) {
    try { this.channel?.postMessage(message); } catch { /* closed */ }
  }

  heard(m) {
    if (!m || typeof m !== 'object') return;
    const guest = this.repo.isGuest;
    if (m.t === 'hello' && !guest) {
      this.tell();
    } else if (m.t === 'connect' && !guest && Array.isArray(m.relays)) {
      this.repo.connect(m.relays, m.options ?? undefined).then(
        (ids) => this.post({ t: 'connected', to: m.from, n: m.n, ids }),
        (e) => this.post({ t: 'connected', to: m.from, n: m.n, error: String(e?.message ?? e) }),
      );
    } else if (m.t === 'connected' && m.to === this.me) {
      const waiter = this.waiting.get(m.n);
      this.waiting.delete(m.n);
      if (waiter) waiter(m);
    } else if (m.t === 'status' && guest) {
      this.status = new Map(Object.entries(m.status ?? {}));
      this.paths = new Map(Object.entries(m.paths ?? {}));
      // Kept, so that this tab connects them if it comes to hold the repo.
      for (const r of m.relays ?? []) if (typeof r === 'string') this.repo._relays.add(r);
      if (this.repo._connectOptions === undefined && m.options) this.repo._connectOptions = m.options;
    }
  }

  /** Did this guest come to hold the repo? Then it connects what the old host held. */
  promoted() {
    if (this.repo._wasGuest && !this.repo.closed && !this.repo.isGuest) {
      this.repo._promoted();
      this.tell();
    }
  }

  /** Host: tell the guests where it stands with its relays. */
  tell() {
    if (!this.channel || this.repo.closed || this.repo.isGuest || !this.relayIds.size) return;
    const status = {};
    const paths = {};
    for (const id of this.relayIds) {
      try {
        status[id] = this.repo.syncStatus(id);
        paths[id] = this.repo.connection(id);
      } catch { /* reloading */ }
    }
    this.post({ t: 'status', status, paths, relays: [...this.repo._relays], options: this.repo._connectOptions ?? null });
  }

  /** Host: `ids` were reached by `connect`. */
  connected(ids) {
    for (const id of ids) this.relayIds.add(id);
    this.tell();
  }

  /** Guest: have the host connect `relays`; its relays' member ids. */
  connect(relays, options, NetworkError) {
    if (!this.channel) return Promise.reject(new NetworkError('this browser cannot share a connection between tabs'));
    const n = ++this.next;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(n);
        reject(new NetworkError('the tab holding the repo did not connect the relays in time'));
      }, CONNECT_TIMEOUT_MS);
      this.waiting.set(n, (m) => {
        clearTimeout(timer);
        if (m.error !== undefined) reject(new NetworkError(m.error));
        else resolve(m.ids);
      });
      this.post({ t: 'connect', from: this.me, n, relays, options: options ?? null });
    });
  }

  /** Guest: the host's sync status with `peer`, as last told. */
  syncStatus(peer) {
    return this.status.get(peer) ?? UNKNOWN;
  }

  /** Guest: how the host reaches `peer`, as last told. */
  connection(peer) {
    return this.paths.get(peer) ?? 'offline';
  }

  close() {
    clearInterval(this.timer);
    clearInterval(this.watch);
    for (const waiter of this.waiting.values()) waiter({ error: 'the repo closed' });
    this.waiting.clear();
    try { this.channel?.close(); } catch { /* closed */ }
  }
}
