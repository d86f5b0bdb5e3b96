// The extension's settings, kept in chrome.storage.local under "settings". Everything has
// a default, so a fresh install needs no configuration. The options page (options.html)
// edits `publicUrls` and `localOnly`; the service worker applies a change at once.

export const SETTINGS_KEY = 'settings';

/** Where the SDK kept "local only" before it became a setting (`STORAGE_KEYS.localOnly`). */
const LEGACY_LOCAL_ONLY_KEY = 'semantest.localOnly';

export const DEFAULT_SETTINGS = Object.freeze({
  /**
   * Public hub base URLs (https:) for when the desktop hub is not running: the instances of
   * one public hub, or one load balancer URL. The SDK fails over between them.
   */
  publicUrls: [],
  /** Never connect to a public hub, even when the desktop hub is not running. */
  localOnly: false,
  /** Local ports to probe; the hub's range by default. */
  ports: [3003, 3004, 3005, 3006, 3007, 3008, 3009, 3010, 3011, 3012],
  /** Retry backoff while offline or on the public hub, ms. */
  backoff: { initialMs: 1000, maxMs: 30000 },
  /** Keepalive interval, ms (below the 30 s service-worker idle limit). */
  keepaliveMs: 20000,
});

/**
 * Checks public hub URLs as the SDK will use them: each must parse, use https:, and be a
 * base URL (no user name or password, query or fragment). Returns the URLs as the browser
 * writes them (without a trailing slash, duplicates dropped), or the first problem.
 * @param {string[]} urls
 * @returns {{urls: string[], error: null} | {urls: null, error: string}}
 */
export function checkPublicUrls(urls) {
  const out = [];
  for (const raw of urls.map((u) => String(u).trim()).filter(Boolean)) {
    let url;
    try {
      url = new URL(raw);
    } catch {
      return { urls: null, error: `${raw} is not a URL. Write it as https://hub.example.com.` };
    }
    if (url.protocol !== 'https:') return { urls: null, error: `${raw} does not start with https://. A public hub is reached over TLS only.` };
    if (url.username || url.password) return { urls: null, error: `${raw} contains a user name or password. Leave them out; the hub's token is stored separately.` };
    if (url.search || url.hash) return { urls: null, error: `${raw} has a query or fragment. Give the hub's base URL only.` };
    const base = url.href.replace(/\/$/, '');
    if (!out.includes(base)) out.push(base);
  }
  return { urls: out, error: null };
}

/** The settings in force: the stored ones over the defaults, bad public URLs left out. */
export async function loadSettings() {
  const got = await chrome.storage.local.get([SETTINGS_KEY, LEGACY_LOCAL_ONLY_KEY]);
  const stored = got[SETTINGS_KEY] ?? {};
  const urls = Array.isArray(stored.publicUrls) ? stored.publicUrls : [];
  // Each URL on its own, so that one bad entry (written by hand) costs only itself.
  const publicUrls = urls.flatMap((u) => checkPublicUrls([u]).urls ?? []);
  return {
    ...DEFAULT_SETTINGS,
    ...stored,
    publicUrls,
    localOnly: !!(stored.localOnly ?? got[LEGACY_LOCAL_ONLY_KEY] ?? false),
    backoff: { ...DEFAULT_SETTINGS.backoff, ...stored.backoff },
  };
}

/** Stores `patch` over the stored settings (the service worker picks the change up). */
export async function saveSettings(patch) {
  const stored = (await chrome.storage.local.get(SETTINGS_KEY))[SETTINGS_KEY] ?? {};
  await chrome.storage.local.set({ [SETTINGS_KEY]: { ...stored, ...patch } });
}
