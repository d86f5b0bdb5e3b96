// The hook between the dashboard and the desktop shell (src-tauri).
//
// In a plain browser `window.__TAURI__` does not exist and desktopShell() returns null, so
// the dashboard shows no desktop-only controls. In the app's window (`withGlobalTauri`,
// capability src-tauri/capabilities/dashboard.json) it returns an object whose methods call
// the shell's commands (src-tauri/src/autostart.rs):
//   autostart_get              → boolean
//   autostart_set {enabled}    → boolean, the state now in force
// The tray's "Start at login" item changes the same setting, so the view reads it afresh
// each time it opens.

export const COMMANDS = {
  getStartAtLogin: 'autostart_get',
  setStartAtLogin: 'autostart_set',
};

/**
 * @returns {null | {
 *   getStartAtLogin(): Promise<boolean>,
 *   setStartAtLogin(on: boolean): Promise<boolean>,
 * }}
 */
export function desktopShell() {
  const tauri = globalThis.window?.__TAURI__;
  if (!tauri) return null;
  const invoke = tauri.core?.invoke ?? tauri.invoke ?? tauri.tauri?.invoke;
  if (typeof invoke !== 'function') return null;
  return {
    async getStartAtLogin() {
      return Boolean(await invoke(COMMANDS.getStartAtLogin));
    },
    async setStartAtLogin(on) {
      return Boolean(await invoke(COMMANDS.setStartAtLogin, { enabled: Boolean(on) }));
    },
  };
}
