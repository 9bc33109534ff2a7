// Tags as the UI shows and takes them: chips (each with a button that removes it), and a field
// that completes tag names from the user's own (GET /api/user/tags?prefix=, most used first). The
// field is an ARIA combobox: the typed prefix is asked for after a pause, the arrow keys move
// through the offers, Enter or a click takes one (or the text as typed), Escape closes the list.
// Used wherever tags are typed: the search's tag filter, the image view, the batch bar.

import { el } from './dom.js';
import { t } from './i18n.js';
import { api } from './api.js';
import { emit } from './events.js';

const SUGGEST_DELAY_MS = 150;
const SUGGESTIONS = 8;

/** Tags compare as the server matches them, near enough: without case. */
export function sameTag(a, b) {
  return a.toLocaleLowerCase() === b.toLocaleLowerCase();
}

/** Draws tags as chips into container. onRemove(tag), when given, adds a remove button to each;
 *  onOpen(tag) makes the tag's name a button (showing the images with that tag). */
export function renderChips(container, tags, onRemove, onOpen) {
  container.replaceChildren(...tags.map((tag) => {
    const chip = el('span', { class: 'chip', 'data-testid': 'tag-chip', 'data-tag': tag });
    if (onOpen) {
      const name = el('button', {
        type: 'button',
        class: 'chip-text chip-open',
        'data-testid': 'tag-chip-open',
        'aria-label': t('tags.open', { tag }),
      }, tag);
      name.addEventListener('click', () => onOpen(tag));
      chip.append(name);
    } else {
      chip.append(el('span', { class: 'chip-text' }, tag));
    }
    if (onRemove) {
      const x = el('button', {
        type: 'button',
        class: 'chip-remove',
        'data-testid': 'tag-chip-remove',
        'aria-label': t('tags.remove', { tag }),
      }, '×');
      x.addEventListener('click', () => onRemove(tag));
      chip.append(x);
    }
    return chip;
  }));
}

let fieldSeq = 0;

/** Turns input into a tag field. onPick(tag) is called with each tag taken; exclude() lists the
 *  tags not to offer (those already there). Returns { close } for the owner. */
export function tagField(input, { onPick, exclude = () => [] }) {
  const id = `tag-suggest-${++fieldSeq}`;
  const list = el('ul', { class: 'suggest', id, role: 'listbox', 'data-testid': 'tag-suggestions', hidden: true });
  input.after(list);
  input.setAttribute('role', 'combobox');
  input.setAttribute('aria-autocomplete', 'list');
  input.setAttribute('aria-controls', id);
  input.setAttribute('aria-expanded', 'false');
  input.setAttribute('autocomplete', 'off');
  input.setAttribute('autocapitalize', 'off');
  input.setAttribute('spellcheck', 'false');

  let offers = [];
  let active = -1;
  let timer = 0;
  let asked = 0; // the latest request; older answers are dropped

  function draw() {
    list.replaceChildren(...offers.map((offer, i) => {
      const li = el('li', {
        id: `${id}-${i}`,
        role: 'option',
        class: 'suggest-item',
        'data-testid': 'tag-suggestion',
        'aria-selected': String(i === active),
      });
      li.append(el('span', null, offer.tag), el('span', { class: 'suggest-count' }, String(offer.count)));
      // Taken on pointerdown's heels without losing the field's focus.
      li.addEventListener('pointerdown', (e) => e.preventDefault());
      li.addEventListener('click', () => take(offer.tag));
      return li;
    }));
    const open = offers.length > 0;
    list.hidden = !open;
    input.setAttribute('aria-expanded', String(open));
    if (active >= 0) input.setAttribute('aria-activedescendant', `${id}-${active}`);
    else input.removeAttribute('aria-activedescendant');
  }

  function close() {
    clearTimeout(timer);
    asked += 1;
    offers = [];
    active = -1;
    draw();
  }

  async function suggest() {
    const prefix = input.value.trim();
    const mine = ++asked;
    let data;
    try {
      data = await api('GET', `/api/user/tags?prefix=${encodeURIComponent(prefix)}&limit=${SUGGESTIONS * 2}`);
    } catch (err) {
      if (err.status === 401) emit('session-lost');
      return; // completion is a help; typing works without it
    }
    if (mine !== asked || document.activeElement !== input) return;
    const taken = exclude();
    offers = (Array.isArray(data.tags) ? data.tags : [])
      .filter((o) => o && typeof o.tag === 'string' && !taken.some((tag) => sameTag(tag, o.tag)))
      .slice(0, SUGGESTIONS);
    active = -1;
    draw();
  }

  function take(tag) {
    const shown = tag.trim();
    close();
    input.value = '';
    if (shown) onPick(shown);
  }

  input.addEventListener('input', () => {
    clearTimeout(timer);
    // A comma (in either width) or 、 ends a tag, as the server's list syntax does.
    const parts = input.value.split(/[,，、]/);
    if (parts.length > 1) {
      input.value = parts.pop();
      for (const part of parts) if (part.trim()) onPick(part.trim());
    }
    if (!input.value.trim()) { close(); return; }
    timer = setTimeout(suggest, SUGGEST_DELAY_MS);
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      if (!offers.length) { suggest(); return; }
      // Past either end is the typed text itself (no offer active).
      let next = active + (e.key === 'ArrowDown' ? 1 : -1);
      if (next >= offers.length) next = -1;
      if (next < -1) next = offers.length - 1;
      active = next;
      draw();
    } else if (e.key === 'Enter') {
      if (active >= 0 || input.value.trim()) {
        e.preventDefault();
        take(active >= 0 ? offers[active].tag : input.value);
      }
    } else if (e.key === 'Escape' && offers.length) {
      // Closes the list only, not the dialog around it.
      e.preventDefault();
      e.stopPropagation();
      close();
    }
  });
  input.addEventListener('blur', () => close());
  return { close };
}
