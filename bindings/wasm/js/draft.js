// Drafts: the mutable document a `change(fn)` callback edits, with
// Automerge's proxy semantics. The draft reads from the current snapshot
// and keeps its own copy of what the callback changed (so reads after a
// write see it), while every write is recorded as an operation on the
// Automerge object it targets (named by object id, which survives list
// indexes shifting under it). The operations are applied by the module in
// one Automerge change when the callback returns (`ops.rs`); nothing is
// applied if it throws. The next snapshot comes from that change's patches.

import { Counter, ImmutableString, ids, codePointIndex } from './snapshot.js';

const STATE = Symbol('synkro.draft');
const unsupported = new Set(['sort', 'reverse', 'copyWithin']);

export class Draft {
  constructor(base) {
    /** The operations, in order. */
    this.ops = [];
    this.temp = 0;
    /** Ids of the draft's own objects (copies and objects made in this change). */
    this.local = new WeakMap();
    /** Objects the draft may mutate. */
    this.owned = new WeakSet();
    /** State of each object reached (keyed by the object it reads now). */
    this.states = new WeakMap();
    this.closed = false;
    this.root = this.proxy(this.state(base, null, null));
  }

  idOf(o) { return ids.get(o) ?? this.local.get(o); }

  state(obj, parent, key) {
    let s = this.states.get(obj);
    if (!s) {
      s = { obj, parent, key, proxy: null, draft: this };
      this.states.set(obj, s);
    }
    return s;
  }

  /** The object of `s`, copied first if it is still the snapshot's (frozen) one. */
  own(s) {
    if (this.owned.has(s.obj)) return s.obj;
    const parent = s.parent ? this.own(s.parent) : null;
    const copy = Array.isArray(s.obj) ? s.obj.slice() : Object.assign({}, s.obj);
    this.local.set(copy, this.idOf(s.obj));
    this.owned.add(copy);
    if (parent) {
      // In a list, the object may have moved (or left): find it.
      const at = Array.isArray(parent) ? parent.indexOf(s.obj) : (parent[s.key] === s.obj ? s.key : -1);
      if (at !== -1) parent[at] = copy;
    }
    this.states.set(copy, s);
    s.obj = copy;
    return copy;
  }

  record(op) {
    if (this.closed) throw new TypeError('this draft belongs to a change that has ended; edit inside change()');
    this.ops.push(op);
  }

  /** `value` as an operation's value and as the draft's own copy of it. */
  encode(value, seen = new Set()) {
    if (value === undefined) throw new TypeError('cannot store undefined; delete the key, or store null');
    if (value === null || typeof value === 'boolean' || typeof value === 'string') return [value, value];
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw new TypeError(`cannot store ${value}`);
      return [value, value];
    }
    if (typeof value !== 'object') throw new TypeError(`cannot store a ${typeof value}`);
    if (value[STATE]) {
      throw new TypeError('this object is already in the document; store a copy of it (for example structuredClone(handle.doc().…))');
    }
    if (value instanceof Counter) return [{ t: 'counter', v: value.value }, value];
    if (value instanceof ImmutableString) return [{ t: 'str', v: value.val }, value];
    if (value instanceof Date) return [{ t: 'date', v: value.getTime() }, new Date(value.getTime())];
    if (value instanceof Uint8Array) return [value.slice(), value.slice()];
    if (seen.has(value)) throw new TypeError('cannot store a value that contains itself');
    seen.add(value);
    const id = `~${++this.temp}`;
    let out;
    if (Array.isArray(value)) {
      const enc = [];
      const work = [];
      for (const item of value) {
        const [e, w] = this.encode(item, seen);
        enc.push(e);
        work.push(w);
      }
      out = [{ t: 'list', id, v: enc }, work];
    } else {
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw new TypeError(`cannot store a ${proto?.constructor?.name ?? 'class instance'}; store plain objects, arrays and values`);
      }
      const enc = {};
      const work = {};
      for (const [k, v] of Object.entries(value)) {
        const [e, w] = this.encode(v, seen);
        enc[k] = e;
        work[k] = w;
      }
      out = [{ t: 'map', id, v: enc }, work];
    }
    seen.delete(value);
    this.local.set(out[1], id);
    this.owned.add(out[1]);
    return out;
  }

  /** The draft's view of `value`, read at `key` of `s`. */
  wrap(s, key, value) {
    if (value instanceof Counter) return this.counter(s, key, value.value);
    if (value === null || typeof value !== 'object' || value instanceof Date || value instanceof Uint8Array || value instanceof ImmutableString) {
      return value;
    }
    const child = this.state(value, s, key);
    child.parent = s;
    child.key = key;
    return this.proxy(child);
  }

  counter(s, key, value) {
    const draft = this;
    const add = (by) => {
      if (!Number.isSafeInteger(by)) throw new TypeError('increment by a safe integer');
      const obj = draft.own(s);
      const at = Array.isArray(obj) ? Number(key) : key;
      draft.record({ k: 'inc', obj: draft.idOf(obj), prop: at, by });
      const next = new Counter(obj[at].value + by);
      obj[at] = next;
      return next.value;
    };
    return new Counter(value, add);
  }

  put(s, key, value) {
    const obj = s.obj;
    let prop = key;
    let k = 'put';
    if (Array.isArray(obj)) {
      prop = index(key);
      if (prop > obj.length) throw new RangeError(`index ${prop} is past the end of a list of ${obj.length}`);
      if (prop === obj.length) k = 'ins';
    }
    const [enc, work] = this.encode(value);
    const mine = this.own(s);
    if (k === 'ins') {
      this.record({ k, obj: this.idOf(mine), index: prop, values: [enc] });
      mine.push(work);
    } else {
      this.record({ k, obj: this.idOf(mine), prop, value: enc });
      mine[prop] = work;
    }
  }

  insert(s, at, values) {
    const encoded = values.map((v) => this.encode(v));
    const mine = this.own(s);
    if (encoded.length) {
      this.record({ k: 'ins', obj: this.idOf(mine), index: at, values: encoded.map((e) => e[0]) });
      mine.splice(at, 0, ...encoded.map((e) => e[1]));
    }
  }

  remove(s, at, count) {
    const mine = this.own(s);
    const gone = mine.slice(at, at + count);
    if (gone.length) {
      this.record({ k: 'del', obj: this.idOf(mine), prop: at, count: gone.length });
      mine.splice(at, gone.length);
    }
    return gone;
  }

  listMethod(s, name) {
    const len = () => s.obj.length;
    const at = (i, fallback) => {
      if (i === undefined) return fallback;
      const n = Math.trunc(Number(i)) || 0;
      return n < 0 ? Math.max(len() + n, 0) : Math.min(n, len());
    };
    switch (name) {
      case 'push': return (...items) => { this.insert(s, len(), items); return len(); };
      case 'unshift': return (...items) => { this.insert(s, 0, items); return len(); };
      case 'pop': return () => (len() ? this.remove(s, len() - 1, 1)[0] : undefined);
      case 'shift': return () => (len() ? this.remove(s, 0, 1)[0] : undefined);
      case 'insertAt': return (i, ...items) => { this.insert(s, checkedIndex(i, len()), items); return this.proxy(s); };
      case 'deleteAt': return (i, count = 1) => { this.remove(s, checkedIndex(i, len() - 1), count); return this.proxy(s); };
      case 'splice': return (start, deleteCount, ...items) => {
        const from = at(start, 0);
        const n = deleteCount === undefined ? len() - from : Math.max(0, Math.min(Math.trunc(Number(deleteCount)) || 0, len() - from));
        const gone = this.remove(s, from, n);
        this.insert(s, from, items);
        return gone;
      };
      case 'fill': return (value, start, end) => {
        for (let i = at(start, 0), e = at(end, len()); i < e; i++) this.put(s, i, value);
        return this.proxy(s);
      };
      default: return null;
    }
  }

  proxy(s) {
    if (s.proxy) return s.proxy;
    const draft = this;
    const list = Array.isArray(s.obj);
    s.proxy = new Proxy(list ? [] : {}, {
      get(target, key, receiver) {
        if (key === STATE) return s;
        const obj = s.obj;
        if (list) {
          if (key === 'length') return obj.length;
          if (typeof key === 'string' && isIndex(key)) return draft.wrap(s, key, obj[key]);
          if (unsupported.has(key)) {
            return () => { throw new TypeError(`${key}() is not supported on a document list; reorder with splice`); };
          }
          const method = typeof key === 'string' ? draft.listMethod(s, key) : null;
          if (method) return method;
          return Reflect.get(target, key, receiver);
        }
        if (typeof key === 'string' && Object.prototype.hasOwnProperty.call(obj, key)) return draft.wrap(s, key, obj[key]);
        return Reflect.get(target, key, receiver);
      },
      set(target, key, value) {
        if (typeof key === 'symbol') throw new TypeError('symbol keys are not stored');
        if (list && key === 'length') {
          const n = index(value);
          if (n > s.obj.length) throw new RangeError('a list can be shortened by setting length, not lengthened');
          draft.remove(s, n, s.obj.length - n);
          return true;
        }
        draft.put(s, key, value);
        return true;
      },
      deleteProperty(target, key) {
        if (list) throw new TypeError('delete on a list leaves a hole; use deleteAt or splice');
        if (typeof key === 'symbol' || !Object.prototype.hasOwnProperty.call(s.obj, key)) return true;
        const mine = draft.own(s);
        draft.record({ k: 'del', obj: draft.idOf(mine), prop: key });
        delete mine[key];
        return true;
      },
      has(target, key) { return key === STATE || key in s.obj; },
      ownKeys() { return Reflect.ownKeys(s.obj); },
      getOwnPropertyDescriptor(target, key) {
        if (list && key === 'length') return { value: s.obj.length, writable: true, enumerable: false, configurable: false };
        const d = Reflect.getOwnPropertyDescriptor(s.obj, key);
        if (!d) return undefined;
        return { value: this.get(target, key), writable: true, enumerable: d.enumerable, configurable: true };
      },
      defineProperty() { throw new TypeError('define properties by assignment'); },
      setPrototypeOf() { throw new TypeError('documents hold plain objects'); },
    });
    return s.proxy;
  }

  /** The state of the draft object `d` at `path`'s parent, and the last key. */
  locate(d, path, what) {
    const s0 = d[STATE];
    if (!Array.isArray(path) || path.length === 0) throw new TypeError(`${what}: path is a non-empty array of keys and indexes`);
    let s = s0;
    for (const key of path.slice(0, -1)) {
      const next = s.obj[key];
      if (next === null || typeof next !== 'object') throw new TypeError(`${what}: nothing to walk into at ${String(key)}`);
      s = this.state(next, s, key);
    }
    const key = path[path.length - 1];
    if (typeof s.obj[key] !== 'string') throw new TypeError(`${what}: ${String(key)} is not a text`);
    return [s, Array.isArray(s.obj) ? index(key) : key];
  }

  splice(d, path, at, del, text) {
    const [s, key] = this.locate(d, path, 'splice');
    const str = s.obj[key];
    if (!Number.isInteger(at) || at < 0 || at > str.length) throw new RangeError(`splice: index ${at} is outside the text (length ${str.length})`);
    const end = Math.min(str.length, at + Math.max(0, del | 0));
    const from = codePointIndex(str, at);
    const mine = this.own(s);
    this.record({ k: 'splice', obj: this.idOf(mine), prop: key, index: from, del: codePointIndex(str, end) - from, text });
    mine[key] = str.slice(0, at) + text + str.slice(end);
  }

  updateText(d, path, text) {
    const [s, key] = this.locate(d, path, 'updateText');
    const mine = this.own(s);
    this.record({ k: 'text', obj: this.idOf(mine), prop: key, text });
    mine[key] = text;
  }
}

function isIndex(key) {
  return /^(0|[1-9]\d*)$/.test(key);
}

function index(key) {
  const n = typeof key === 'number' ? key : Number(key);
  if (!Number.isInteger(n) || n < 0) throw new TypeError(`${String(key)} is not a list index`);
  return n;
}

function checkedIndex(i, max) {
  if (!Number.isInteger(i) || i < 0 || i > max) throw new RangeError(`index ${i} is outside the list`);
  return i;
}

/** The draft that `d` (an object of a draft) belongs to. */
export function draftOf(d, what) {
  const s = d !== null && typeof d === 'object' ? d[STATE] : undefined;
  if (!s) throw new TypeError(`${what}: the first argument is the draft given to change() (or an object in it)`);
  return s.draft;
}
