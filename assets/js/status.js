// The server's image count in the header (/api/status), refreshed after uploads and deletions.

import { $ } from './dom.js';
import { formatCount } from './i18n.js';
import { api } from './api.js';

let statusTimer = 0;
export async function refreshStatus() {
  try {
    const data = await api('GET', '/api/status');
    const n = Number(data.total_images) || 0;
    $('server-total-count').textContent = formatCount(n);
    $('server-total-count').dataset.value = String(n);
    $('server-total').hidden = false;
  } catch {
    // The counter is a nicety; the page works without it.
  }
}
export function scheduleStatus() {
  clearTimeout(statusTimer);
  statusTimer = setTimeout(refreshStatus, 300);
}
