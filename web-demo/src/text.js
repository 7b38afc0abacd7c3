import { splice } from 'synkro';

// Turning edits of a plain <input>/<textarea> into splices of a
// collaborative text, and keeping the caret in place when someone else's
// edit changes the text under it.
//
// synkro counts text positions in Unicode code points; the DOM counts UTF-16
// code units. Everything here converts between the two.

/** The single splice that turns `before` into `after` (code points). */
export function diff(before, after) {
  const a = Array.from(before);
  const b = Array.from(after);
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  return { index: start, deleteCount: endA - start, insert: b.slice(start, endB).join('') };
}

/** UTF-16 offset → code-point offset in `text`. */
export function toCodePoints(text, utf16) {
  return Array.from(text.slice(0, utf16)).length;
}

/** Code-point offset → UTF-16 offset in `text`. */
export function toUtf16(text, codePoints) {
  return Array.from(text).slice(0, codePoints).join('').length;
}

/**
 * Where a caret at `pos` (UTF-16, in `before`) belongs in `after`: moved by
 * the text inserted or removed before it, kept otherwise.
 */
export function moveCaret(before, after, pos) {
  const { index, deleteCount, insert } = diff(before, after);
  const cp = toCodePoints(before, pos);
  let moved = cp;
  if (cp > index + deleteCount) moved = cp - deleteCount + Array.from(insert).length;
  else if (cp > index) moved = index + Array.from(insert).length;
  return toUtf16(after, moved);
}

/**
 * Bind a text field to the collaborative text at `key` of the document
 * `doc` (a DocHandle): typing becomes splices; remote changes update the
 * field without moving the caret. Returns `{ refresh() }`.
 */
export function bindText(field, doc, key) {
  const read = () => String(doc.doc()[key] ?? '');
  let shown = read();
  field.value = shown;
  field.addEventListener('input', () => {
    const { index, deleteCount, insert } = diff(shown, field.value);
    if (deleteCount === 0 && insert === '') return;
    // The diff counts code points; splice() counts UTF-16 units.
    const from = toUtf16(shown, index);
    const to = toUtf16(shown, index + deleteCount);
    doc.change((d) => {
      if (typeof d[key] === 'string') splice(d, [key], from, to - from, insert);
      else d[key] = field.value;
    });
    shown = field.value;
  });
  return {
    refresh() {
      const now = read();
      if (now === shown) return;
      const focused = document.activeElement === field;
      const [start, end] = [field.selectionStart, field.selectionEnd];
      field.value = now;
      if (focused) field.setSelectionRange(moveCaret(shown, now, start), moveCaret(shown, now, end));
      shown = now;
    },
  };
}
