// The link to the relay: where it is (asked from the server that served
// this page, remembered for offline starts), staying connected, following
// the browser's online/offline state, and what the status light shows.

const CACHE_KEY = 'synkro-boards/relays';
const RETRY_MS = 3000;

/** Addresses a browser can dial: WebSocket first, then WebRTC-direct. */
function dialable(addresses) {
  const ws = addresses.filter((a) => /\/(ws|wss|tls\/ws)\/p2p\//.test(a));
  const webrtc = addresses.filter((a) => a.includes('/webrtc-direct/'));
  return ws.length ? ws.slice(0, 1) : webrtc.slice(0, 1);
}

/** The relay's HTTP origin: this page's, unless the build names another. */
function relayOrigin() {
  return import.meta.env.VITE_SYNKRO_RELAY || location.origin;
}

export class Connection {
  constructor(repo, onStatus) {
    this.repo = repo;
    this.onStatus = onStatus;
    this.relays = [];
    this.relayId = localStorage.getItem(`${CACHE_KEY}/id`) || null;
    this.workOffline = false;
    // Set by the browser's `offline` event, cleared by `online`. The start
    // does not read `navigator.onLine`: it is false on a machine with no
    // route off it (a LAN or the relay on this machine still answer), so
    // the app tries the relay and shows `unreachable` if it does not.
    this.browserOffline = false;
    this.connected = false;
    this.attempt = null;
    this.failed = false;
    this.state = 'starting';
  }

  start() {
    window.addEventListener('online', () => {
      this.browserOffline = false;
      this.#connect();
    });
    window.addEventListener('offline', () => {
      this.browserOffline = true;
      this.#disconnect();
    });
    setInterval(() => this.#poll(), 500);
    this.#connect();
  }

  /** Stop syncing (edits keep being saved here) or resume. */
  setWorkOffline(offline) {
    this.workOffline = offline;
    if (offline) this.#disconnect();
    else this.#connect();
  }

  async #discover() {
    try {
      const response = await fetch(new URL('/bootstrap', relayOrigin()), { cache: 'no-store' });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const { addresses } = await response.json();
      const picked = dialable(addresses ?? []);
      if (picked.length) {
        localStorage.setItem(CACHE_KEY, JSON.stringify(picked));
        return picked;
      }
    } catch {
      // The server is unreachable: use what we learned last time.
    }
    return JSON.parse(localStorage.getItem(CACHE_KEY) ?? '[]');
  }

  #shouldBeOnline() {
    return !this.workOffline && !this.browserOffline && !this.repo.closed;
  }

  async #connect() {
    if (this.attempt || !this.#shouldBeOnline()) return;
    this.attempt = (async () => {
      while (this.#shouldBeOnline() && !this.connected) {
        this.relays = await this.#discover();
        if (this.relays.length) {
          try {
            const [id] = await this.repo.connect(this.relays);
            this.relayId = id;
            localStorage.setItem(`${CACHE_KEY}/id`, id);
            this.connected = true;
            this.failed = false;
            break;
          } catch {
            await this.repo.disconnect();
          }
        }
        this.failed = true;
        this.#poll();
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
      this.attempt = null;
      this.#poll();
    })();
  }

  async #disconnect() {
    this.connected = false;
    await this.repo.disconnect();
    this.#poll();
  }

  #poll() {
    let state;
    if (!this.#shouldBeOnline()) state = 'offline';
    else if (!this.relayId || !this.connected) state = this.failed ? 'unreachable' : 'connecting';
    else {
      const s = this.repo.syncStatus(this.relayId);
      // The network layer reconnects by itself; until it has, we are
      // connecting again.
      state = !s.connected ? 'connecting' : s.complete ? 'synced' : 'syncing';
    }
    this.#set(state);
  }

  #set(state) {
    if (state === this.state) return;
    this.state = state;
    this.onStatus(state);
  }
}
