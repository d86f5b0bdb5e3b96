// The hook between the dashboard and the desktop shell (src-tauri), which is built later.
//
// In a plain browser `window.__TAURI__` does not exist and desktopShell() returns null, so
// the dashboard shows no desktop-only controls. In the Tauri window (with
// `app.withGlobalTauri: true`) it returns an object whose methods call the shell.
//
// Start at login uses tauri-plugin-autostart's commands. If the shell prefers its own
// commands (for example to keep the tray's "Start at login" check item in step), change
// AUTOSTART_COMMANDS here and nowhere else.

export const AUTOSTART_COMMANDS = {
  isEnabled: 'plugin:autostart|is_enabled',
  enable: 'plugin:autostart|enable',
  disable: 'plugin:autostart|disable',
};

/**
 * @returns {null | {
 *   getStartAtLogin(): Promise<boolean>,
 *   setStartAtLogin(on: boolean): Promise<void>,
 * }}
 */
export function desktopShell() {
  const tauri = globalThis.window?.__TAURI__;
  if (!tauri) return null;
  const invoke = tauri.core?.invoke ?? tauri.invoke ?? tauri.tauri?.invoke;
  if (typeof invoke !== 'function') return null;
  return {
    async getStartAtLogin() {
      return Boolean(await invoke(AUTOSTART_COMMANDS.isEnabled));
    },
    async setStartAtLogin(on) {
      await invoke(on ? AUTOSTART_COMMANDS.enable : AUTOSTART_COMMANDS.disable);
    },
  };
}
