// views/notifications.js: the user's notifications, newest first, with mark-as-read.

import { api } from '../api.js';
import { h, when, notice } from '../ui.js';
import { needLogin } from './account.js';

export async function notificationsView() {
  const gate = needLogin();
  if (gate) return gate;
  const list = h('ul', { class: 'notes' });
  const status = h('div', { role: 'status' });
  const more = h('button', { type: 'button', class: 'btn btn-secondary', hidden: true }, 'Load more');
  let token = null;

  function item(n) {
    const li = h('li', { class: n.read ? 'note' : 'note unread' });
    const btn = n.read ? null : h('button', { type: 'button', class: 'btn btn-small btn-secondary', onclick: async () => {
      btn.disabled = true;
      try {
        li.replaceWith(item(await api(`/api/v1/notifications/${encodeURIComponent(n.id)}/read`, { method: 'POST' })));
        document.dispatchEvent(new Event('notes-changed'));
      } catch (err) {
        li.append(notice('error', err.message));
        btn.disabled = false;
      }
    } }, 'Mark as read');
    li.append(
      h('div', { class: 'note-head' }, h('h2', {}, n.subject), h('span', { class: 'muted small' }, when(n.created_at), n.read ? '' : ' · unread')),
      h('p', { class: 'note-body' }, n.body), btn);
    return li;
  }
  async function load() {
    try {
      const p = new URLSearchParams({ page_size: 20 });
      if (token) p.set('page_token', token);
      const page = await api(`/api/v1/notifications?${p}`);
      list.append(...page.items.map(item));
      token = page.next_page_token;
      more.hidden = !token;
      if (!list.children.length) status.replaceChildren(h('p', {}, 'Nothing here yet.'));
    } catch (err) {
      status.replaceChildren(notice('error', err.message));
    }
  }
  more.addEventListener('click', load);
  await load();
  return h('section', {}, h('h1', {}, 'Notifications'), status, list, h('div', { class: 'more' }, more));
}
