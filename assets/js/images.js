// What an image record is called and how it is described: its category, its title, its alt text,
// the addresses of its pixels. Functions of the record, shared by the gallery's cards and the
// viewer.

import { text, safePath } from './dom.js';
import { CATEGORIES, versions } from './state.js';

export function categoryOf(image) {
  if (CATEGORIES.includes(image && image.category)) return image.category;
  const c = image && image.context_info && image.context_info.category;
  if (CATEGORIES.includes(c)) return c;
  return typeof image.filename === 'string' && image.filename.startsWith('char_') ? 'char' : 'clothes';
}

/** The name an image came with: its page title, else its own title, alt text or original file name. */
export function givenName(image) {
  const info = image.context_info || {};
  return text(image.page_title) || text(info.title) || text(info.alt) ||
    text(info.original_filename) || text(info.originalFilename);
}

export function formatOf(image) {
  const ext = text(image.filename).split('.').pop() || '';
  return ext.toUpperCase().replace('JPEG', 'JPG');
}

export function dimsOf(image) {
  return image.image_width > 0 && image.image_height > 0 ? `${image.image_width} × ${image.image_height}` : '';
}

/** What to call an image: the name it came with, else its format and size (the stored file name
 *  is generated and says little). */
export function titleOf(image) {
  return givenName(image) || [formatOf(image), dimsOf(image)].filter(Boolean).join(' · ') ||
    text(image.filename) || image.id;
}

export function altOf(image) {
  const info = image.context_info || {};
  return text(info.alt) || text(image.page_title) || text(info.caption) || text(image.filename);
}

/** The address of the image ('preview_url') or its thumbnail ('thumbnail_url'), or null. After an
 *  edit the server serves new pixels at the same address (revalidated by ETag), but a page keeps
 *  the pixels it already showed for an address; an edited image's addresses therefore carry its
 *  version, a parameter the server ignores. */
export function fileUrl(image, field) {
  const url = safePath(image[field]);
  if (!url || !versions.has(image.id)) return url;
  return `${url}${url.includes('?') ? '&' : '?'}v=${versions.get(image.id)}`;
}
