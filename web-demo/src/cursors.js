// Other people's carets and selections drawn over a <textarea>: a
// transparent copy of the text laid out exactly like the textarea, with
// coloured marks at their positions.
import { toUtf16 } from './text.js';

const MIRRORED = [
  'boxSizing', 'width', 'paddingTop', 'paddingRight', 'paddingBottom', 'paddingLeft',
  'borderTopWidth', 'borderRightWidth', 'borderBottomWidth', 'borderLeftWidth', 'borderStyle',
  'fontFamily', 'fontSize', 'fontWeight', 'fontStyle', 'letterSpacing', 'lineHeight',
  'textTransform', 'wordSpacing', 'textIndent', 'tabSize',
];

export class Cursors {
  constructor(textarea) {
    this.textarea = textarea;
    this.layer = document.createElement('div');
    this.layer.className = 'cursor-layer';
    this.layer.setAttribute('aria-hidden', 'true');
    textarea.insertAdjacentElement('afterend', this.layer);
    textarea.addEventListener('scroll', () => this.#scroll());
    new ResizeObserver(() => this.render(this.last ?? [])).observe(textarea);
  }

  /** `carets`: `[{ name, color, start, end }]`, offsets in code points. */
  render(carets) {
    this.last = carets;
    const style = getComputedStyle(this.textarea);
    for (const key of MIRRORED) this.layer.style[key] = style[key];
    this.layer.style.height = `${this.textarea.clientHeight}px`;
    this.layer.style.borderColor = 'transparent';
    const text = this.textarea.value;
    const marks = [];
    for (const c of carets) {
      const start = toUtf16(text, Math.max(0, c.start | 0));
      const end = toUtf16(text, Math.max(0, c.end | 0));
      marks.push({ at: Math.min(start, end), kind: 'caret', c });
      if (end !== start) marks.push({ at: Math.min(start, end), kind: 'open', c }, { at: Math.max(start, end), kind: 'close', c });
    }
    marks.sort((a, b) => a.at - b.at || (a.kind === 'close' ? -1 : 1));
    this.layer.replaceChildren();
    let pos = 0;
    let selection = null;
    const append = (s) => {
      if (!s) return;
      const node = document.createTextNode(s);
      (selection ?? this.layer).appendChild(node);
    };
    for (const m of marks) {
      append(text.slice(pos, m.at));
      pos = m.at;
      if (m.kind === 'caret') {
        const caret = document.createElement('span');
        caret.className = 'remote-caret';
        caret.style.setProperty('--who', m.c.color);
        caret.dataset.name = m.c.name;
        (selection ?? this.layer).appendChild(caret);
      } else if (m.kind === 'open' && !selection) {
        selection = document.createElement('span');
        selection.className = 'remote-selection';
        selection.style.setProperty('--who', m.c.color);
        this.layer.appendChild(selection);
      } else if (m.kind === 'close') {
        selection = null;
      }
    }
    append(text.slice(pos));
    append('\u200b'); // a trailing newline still takes a line
    this.#scroll();
  }

  #scroll() {
    this.layer.scrollTop = this.textarea.scrollTop;
  }
}
