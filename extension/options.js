// The options page: edits the public hub URLs and "local only" (settings.js). Saving
// stores them; the service worker applies them at once (chrome.storage.onChanged), with
// no reinstall or restart of the browser.

import { checkPublicUrls, loadSettings, saveSettings } from './settings.js';

const $ = (id) => document.getElementById(id);
const urlsField = $('public-urls');
const urlsError = $('public-urls-error');
const status = $('status');

function showError(text) {
  urlsField.setAttribute('aria-invalid', 'true');
  urlsError.textContent = text;
  urlsError.hidden = false;
  status.textContent = '';
  urlsField.focus();
}

function clearError() {
  urlsField.removeAttribute('aria-invalid');
  urlsError.textContent = '';
  urlsError.hidden = true;
}

async function show() {
  const s = await loadSettings();
  urlsField.value = s.publicUrls.join('\n');
  $('local-only').checked = s.localOnly;
}

$('settings-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  status.textContent = '';
  const { urls, error } = checkPublicUrls(urlsField.value.split('\n'));
  if (error) { showError(error); return; }
  clearError();
  // A public hub needs a host permission (optional_host_permissions). Asked first, while
  // the click still counts as a user gesture; already granted, it is not asked again.
  if (urls.length) {
    const origins = urls.map((u) => `${new URL(u).origin}/*`);
    let granted = false;
    try {
      granted = await chrome.permissions.request({ origins });
    } catch (err) {
      showError(`The browser refused access to ${origins.join(', ')}: ${err.message}`);
      return;
    }
    if (!granted) {
      showError(`Not saved: without access to ${urls.join(', ')} the extension cannot reach that hub. Save again and allow it.`);
      return;
    }
  }
  const localOnly = $('local-only').checked;
  await saveSettings({ publicUrls: urls, localOnly });
  urlsField.value = urls.join('\n');
  status.textContent = `Saved at ${new Date().toLocaleTimeString()}. The extension uses these settings now.`;
});

urlsField.addEventListener('input', () => { if (urlsField.hasAttribute('aria-invalid')) clearError(); });
show();
