// Snapshots: what `handle.doc()` returns. A snapshot is frozen plain data
// (objects, arrays, strings for text, numbers, booleans, null, `Counter`,
// `Date`, `Uint8Array`); the next version is made from the previous one
// and the change's patches, copying only the objects on the path of each
// patch, so unchanged parts stay the same objects between versions (cheap
// to compare in a render). Maps and lists are registered in `ids` under
// their Automerge object id, which is how a draft (draft.js) names what
// it edits.

/**
 * A counter: concurrent increments add up instead of overwriting each
 * other. Store `new Counter(0)`; in a change, `d.votes.increment()`.
 */
export class Counter {
  #add;
  constructor(value = 0, add = undefined) {
    if (!Number.isSafeInteger(value)) throw new TypeError('a counter starts at a safe integer');
    this.value = value;
    this.#add = add;
    Object.freeze(this);
  }
  /** Add `by` (default 1); only on a draft's counter, inside `change()`. Returns the new value. */
  increment(by = 1) {
    if (!this.#add) throw new TypeError('increment a counter inside change(), on the draft it gives');
    return this.#add(by);
  }
  /** Subtract `by` (default 1); see `increment`. */
  decrement(by = 1) { return this.increment(-by); }
  valueOf() { return this.value; }
  toString() { return String(this.value); }
  toJSON() { return this.value; }
}

/** A string stored as one value rather than as collaborative text (ids, enum values). */
export class ImmutableString {
  constructor(value) {
    if (typeof value !== 'string') throw new TypeError('ImmutableString holds a string');
    this.val = value;
    Object.freeze(this);
  }
  toString() { return this.val; }
  toJSON() { return this.val; }
}

/** Automerge object ids of the snapshot's maps and lists (shared by every handle). */
export const ids = new WeakMap();
export const counter = (n) => new Counter(n);

const surrogates = /[\uD800-\uDFFF]/;

/**
 * Step through `s` one code point at a time until `stop(codePoints,
 * utf16)` holds or the text ends; returns both counts there.
 */
function walk(s, stop) {
  let [cp, u] = [0, 0];
  while (u < s.length && !stop(cp, u)) {
    const c = s.charCodeAt(u);
    u += c >= 0xd800 && c <= 0xdbff && u + 1 < s.length ? 2 : 1;
    cp++;
  }
  return [cp, u];
}

/** The UTF-16 offset in `s` of code point `cp` (Automerge counts code points). */
export function utf16Index(s, cp) {
  return surrogates.test(s) ? walk(s, (n) => n >= cp)[1] : cp;
}

/** The code point index of UTF-16 offset `u` in `s`. */
export function codePointIndex(s, u) {
  return surrogates.test(s) ? walk(s, (_, i) => i >= u)[0] : u;
}

/**
 * The snapshot after `patches` (as the module gives them: text indexes in
 * code points), sharing what they did not touch with `root`. Rewrites text
 * indexes in the patches to UTF-16 units, as `@automerge/automerge` gives
 * them.
 */
export function applyPatches(root, patches) {
  const fresh = new Set();
  const writable = (o) => {
    if (fresh.has(o)) return o;
    const copy = Array.isArray(o) ? o.slice() : Object.assign({}, o);
    const id = ids.get(o);
    if (id !== undefined) ids.set(copy, id);
    fresh.add(copy);
    return copy;
  };
  // A container a patch puts: a new empty one under the same id (the
  // patch's own value object is handed to listeners and stays empty).
  const adopt = (v) => {
    if (v === null || typeof v !== 'object' || !ids.has(v)) return v;
    const made = Array.isArray(v) ? [] : {};
    ids.set(made, ids.get(v));
    fresh.add(made);
    return made;
  };
  root = writable(root);
  for (const p of patches) {
    const { path } = p;
    const last = path.length - 1;
    let cur = root;
    let ok = true;
    // Walk to the container the patch acts in, copying on the way; stop at
    // a text (a string), which the patch edits as a whole.
    let i = 0;
    for (; i < last; i++) {
      const next = cur[path[i]];
      if (typeof next === 'string') break;
      if (next === null || typeof next !== 'object') { ok = false; break; }
      const copy = writable(next);
      cur[path[i]] = copy;
      cur = copy;
    }
    if (!ok) continue;
    if (i < last) {
      // A text edit: path[i] names the string in `cur`, path[i + 1] the index.
      const key = path[i];
      const s = cur[key];
      const at = utf16Index(s, path[i + 1]);
      if (p.action === 'splice') {
        cur[key] = s.slice(0, at) + p.value + s.slice(at);
      } else if (p.action === 'del') {
        const end = utf16Index(s, path[i + 1] + (p.length ?? 1));
        cur[key] = s.slice(0, at) + s.slice(end);
      }
      path[i + 1] = at;
      continue;
    }
    const key = path[last];
    switch (p.action) {
      case 'put':
        cur[key] = adopt(p.value);
        break;
      case 'insert':
        cur.splice(key, 0, ...p.values.map(adopt));
        break;
      case 'del':
        if (Array.isArray(cur)) cur.splice(key, p.length ?? 1);
        else delete cur[key];
        break;
      case 'inc':
        cur[key] = new Counter((cur[key]?.value ?? 0) + p.value);
        break;
      default:
        break;
    }
  }
  for (const o of fresh) Object.freeze(o);
  return root;
}
