// The extension's settings, kept in chrome.storage.local under "settings". Everything has
// a default, so a fresh install needs no configuration.

export const SETTINGS_KEY = 'settings';

export const DEFAULT_SETTINGS = Object.freeze({
  /**
   * Public hub base URLs (https:) for when the desktop hub is not running: the instances of
   * one public hub, or one load balancer URL. The SDK fails over between them.
   */
  publicUrls: [],
  /** Local ports to probe; the hub's range by default. */
  ports: [3003, 3004, 3005, 3006, 3007, 3008, 3009, 3010, 3011, 3012],
  /** Retry backoff while offline or on the public hub, ms. */
  backoff: { initialMs: 1000, maxMs: 30000 },
  /** Keepalive interval, ms (below the 30 s service-worker idle limit). */
  keepaliveMs: 20000,
});

export async function loadSettings() {
  const stored = (await chrome.storage.local.get(SETTINGS_KEY))[SETTINGS_KEY] ?? {};
  return { ...DEFAULT_SETTINGS, ...stored, backoff: { ...DEFAULT_SETTINGS.backoff, ...stored.backoff } };
}
