// Small DOM helpers.

/** `el('button', { class: 'x', onclick }, ['text', child])` */
export function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, '');
    else node.setAttribute(key, String(value));
  }
  for (const child of [children].flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** The first characters of a member or document id. */
export function shortId(id) {
  return String(id).slice(0, 8);
}

/** A short message at the bottom of the screen. */
export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  const node = el('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, message);
  box.append(node);
  setTimeout(() => node.remove(), kind === 'error' ? 8000 : 4000);
}

/**
 * A modal <dialog> with a title, a body and buttons; resolves with the
 * value of the button pressed (or null when dismissed).
 */
export function modal(title, body, buttons) {
  return new Promise((resolve) => {
    const form = el('form', { method: 'dialog' }, [
      el('h2', {}, title),
      ...[body].flat(),
      el('div', { class: 'dialog-buttons' }, buttons.map((b) =>
        el('button', { class: `button ${b.primary ? 'primary' : ''}`, value: b.value, type: b.submit === false ? 'button' : 'submit', onclick: b.onclick }, b.label))),
    ]);
    const dialog = el('dialog', { class: 'dialog', 'aria-label': title }, [form]);
    document.body.append(dialog);
    dialog.addEventListener('close', () => {
      resolve(dialog.returnValue || null);
      dialog.remove();
    });
    dialog.showModal();
  });
}
