// views/account.js: sign in, registration, sign out, and the account page with
// saved cards (payments vault) and addresses (users). The card and address forms
// are reused by checkout.

import { api, login, logout, session } from '../api.js';
import { h, field, notice, showFormError, clearFormError, busy } from '../ui.js';
import { navigate } from '../router.js';

function safeNext(query) {
  const next = query.get('next') || '/';
  return next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

/** Views that need a signed-in user call this first; it returns the sign-in page when there is none. */
export function needLogin() {
  if (session()) return null;
  const next = location.pathname + location.search;
  return h('section', { class: 'narrow' }, h('h1', {}, 'Sign in to continue'),
    notice('info', 'This page needs an account. ', h('a', { href: `/login?next=${encodeURIComponent(next)}` }, 'Sign in'),
      ' or ', h('a', { href: `/register?next=${encodeURIComponent(next)}` }, 'create an account'), '.'));
}

export function loginView({ query }) {
  const form = h('form', { class: 'stack', onsubmit: async (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    await busy(form, async () => {
      try {
        await login(fd.get('email'), fd.get('password'));
        navigate(safeNext(query), { replace: true });
      } catch (err) {
        showFormError(form, err);
      }
    });
  } },
  h('div', { class: 'form-error', tabindex: -1 }),
  field('Email', { name: 'email', type: 'email', autocomplete: 'username', required: true, maxlength: 254 }),
  field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, maxlength: 128 }),
  h('button', { type: 'submit', class: 'btn' }, 'Sign in'));
  return h('section', { class: 'narrow' }, h('h1', {}, 'Sign in'), form,
    h('p', {}, 'New here? ', h('a', { href: `/register?next=${encodeURIComponent(safeNext(query))}` }, 'Create an account')));
}

export function registerView({ query }) {
  const form = h('form', { class: 'stack', onsubmit: async (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    await busy(form, async () => {
      try {
        await api('/api/v1/users', { method: 'POST', body: { name: fd.get('name'), email: fd.get('email'), password: fd.get('password') } });
        await login(fd.get('email'), fd.get('password'));
        navigate(safeNext(query), { replace: true });
      } catch (err) {
        showFormError(form, err);
      }
    });
  } },
  h('div', { class: 'form-error', tabindex: -1 }),
  field('Name', { name: 'name', autocomplete: 'name', required: true, maxlength: 100 }),
  field('Email', { name: 'email', type: 'email', autocomplete: 'email', required: true, maxlength: 254 }),
  field('Password', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 10, maxlength: 128 },
    'At least 10 characters; not a common password.'),
  h('button', { type: 'submit', class: 'btn' }, 'Create account'));
  return h('section', { class: 'narrow' }, h('h1', {}, 'Create an account'), form,
    h('p', {}, 'Have an account? ', h('a', { href: `/login?next=${encodeURIComponent(safeNext(query))}` }, 'Sign in')));
}

export async function logoutView() {
  await logout();
  navigate('/', { replace: true });
  return h('p', {}, 'Signed out.');
}

export function cardText(pm) {
  return `${pm.brand.toUpperCase()} •••• ${pm.last4}, expires ${String(pm.exp_month).padStart(2, '0')}/${pm.exp_year}`;
}

export function addressText(a) {
  return [a.name, a.line1, a.line2, `${a.postal_code} ${a.city}`, a.region, a.country].filter(Boolean).join(', ');
}

/** The add-card form; onSaved(paymentMethod) runs after a 201. */
export function cardForm(onSaved) {
  const year = new Date().getUTCFullYear();
  const form = h('form', { class: 'stack', 'aria-label': 'Add a card', onsubmit: async (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    await busy(form, async () => {
      try {
        const pm = await api('/api/v1/payment-methods', { method: 'POST', body: { card: {
          number: fd.get('card.number'), exp_month: Number(fd.get('card.exp_month')),
          exp_year: Number(fd.get('card.exp_year')), cvc: fd.get('card.cvc'), holder: fd.get('card.holder') || undefined,
        } } });
        form.reset();
        clearFormError(form);
        await onSaved(pm);
      } catch (err) {
        showFormError(form, err);
      }
    });
  } },
  h('div', { class: 'form-error', tabindex: -1 }),
  field('Card number', { name: 'card.number', inputmode: 'numeric', autocomplete: 'cc-number', required: true, maxlength: 23 },
    'Test card: 4242 4242 4242 4242 (4000 0000 0000 0002 is declined)'),
  h('div', { class: 'row' },
    field('Month', { name: 'card.exp_month', autocomplete: 'cc-exp-month', value: '12',
      options: Array.from({ length: 12 }, (_, i) => [i + 1, String(i + 1).padStart(2, '0')]) }),
    field('Year', { name: 'card.exp_year', autocomplete: 'cc-exp-year', value: String(year + 3),
      options: Array.from({ length: 12 }, (_, i) => [year + i, String(year + i)]) }),
    field('CVC', { name: 'card.cvc', inputmode: 'numeric', autocomplete: 'cc-csc', required: true, maxlength: 4, size: 4 })),
  field('Name on card', { name: 'card.holder', autocomplete: 'cc-name', maxlength: 100 }),
  h('button', { type: 'submit', class: 'btn' }, 'Save card'));
  return form;
}

/** The add-address form; onSaved(address) runs after a 201. */
export function addressForm(onSaved) {
  const form = h('form', { class: 'stack', 'aria-label': 'Add an address', onsubmit: async (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    const body = {};
    for (const [k, v] of fd.entries()) if (String(v).trim()) body[k] = String(v).trim();
    await busy(form, async () => {
      try {
        const a = await api('/api/v1/users/me/addresses', { method: 'POST', body });
        form.reset();
        clearFormError(form);
        await onSaved(a);
      } catch (err) {
        showFormError(form, err);
      }
    });
  } },
  h('div', { class: 'form-error', tabindex: -1 }),
  field('Full name', { name: 'name', autocomplete: 'name', required: true, maxlength: 100 }),
  field('Address', { name: 'line1', autocomplete: 'address-line1', required: true, maxlength: 200 }),
  field('Address line 2 (optional)', { name: 'line2', autocomplete: 'address-line2', maxlength: 200 }),
  h('div', { class: 'row' },
    field('Postal code', { name: 'postal_code', autocomplete: 'postal-code', required: true, maxlength: 20, size: 8 }),
    field('City', { name: 'city', autocomplete: 'address-level2', required: true, maxlength: 100 })),
  h('div', { class: 'row' },
    field('Region (optional)', { name: 'region', autocomplete: 'address-level1', maxlength: 100 }),
    field('Country code', { name: 'country', autocomplete: 'country', required: true, maxlength: 2, size: 3, value: 'US', pattern: '[A-Za-z]{2}' }, 'Two letters, e.g. US, DE')),
  field('Phone (optional)', { name: 'phone', type: 'tel', autocomplete: 'tel', maxlength: 30 }),
  h('button', { type: 'submit', class: 'btn' }, 'Save address'));
  return form;
}

function deletable(text, path, label) {
  const li = h('li', { class: 'line' }, h('span', {}, text));
  const btn = h('button', { type: 'button', class: 'btn btn-small btn-secondary', 'aria-label': `Remove ${label}`, onclick: async () => {
    btn.disabled = true;
    try {
      await api(path, { method: 'DELETE' });
      li.remove();
    } catch (err) {
      li.append(notice('error', err.message));
      btn.disabled = false;
    }
  } }, 'Remove');
  li.append(btn);
  return li;
}

export async function accountView() {
  const gate = needLogin();
  if (gate) return gate;
  let me, cards;
  try {
    [me, cards] = await Promise.all([api('/api/v1/users/me'), api('/api/v1/payment-methods?page_size=50')]);
  } catch (err) {
    return h('section', {}, h('h1', {}, 'Your account'), notice('error', err.message));
  }
  const nameForm = h('form', { class: 'row', onsubmit: async (e) => {
    e.preventDefault();
    await busy(nameForm, async () => {
      try {
        await api('/api/v1/users/me', { method: 'PATCH', body: { name: new FormData(nameForm).get('name') } });
        clearFormError(nameForm);
        nameForm.querySelector('.form-error').replaceChildren(notice('ok', 'Name saved.'));
      } catch (err) { showFormError(nameForm, err); }
    });
  } }, h('div', { class: 'form-error', tabindex: -1 }),
  field('Name', { name: 'name', value: me.name, required: true, maxlength: 100 }),
  h('button', { type: 'submit', class: 'btn btn-secondary' }, 'Save name'));

  const cardList = h('ul', { class: 'lines', 'aria-label': 'Saved cards' },
    cards.items.map((pm) => deletable(cardText(pm), `/api/v1/payment-methods/${pm.id}`, cardText(pm))));
  const addrList = h('ul', { class: 'lines', 'aria-label': 'Saved addresses' },
    (me.addresses || []).map((a) => deletable(addressText(a), `/api/v1/users/me/addresses/${a.id}`, addressText(a))));

  return h('section', { class: 'account' },
    h('h1', {}, 'Your account'),
    h('p', {}, `${me.email}`, me.role === 'admin' ? h('span', { class: 'badge' }, 'admin') : null),
    nameForm,
    h('div', { class: 'two-col' },
      h('section', {}, h('h2', {}, 'Cards'), cardList,
        h('details', {}, h('summary', {}, 'Add a card'), cardForm(async (pm) => { cardList.append(deletable(cardText(pm), `/api/v1/payment-methods/${pm.id}`, cardText(pm))); }))),
      h('section', {}, h('h2', {}, 'Addresses'), addrList,
        h('details', {}, h('summary', {}, 'Add an address'), addressForm(async (a) => { addrList.append(deletable(addressText(a), `/api/v1/users/me/addresses/${a.id}`, addressText(a))); })))),
    h('p', {}, h('a', { href: '/logout', class: 'btn btn-secondary' }, 'Sign out')));
}

