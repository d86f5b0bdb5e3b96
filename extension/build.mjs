#!/usr/bin/env node
// Assembles the loadable extension: extension/ plus the SDK (clients/js/src as sdk/) and
// the icons, into OUT (default target/extension). Chrome loads it with
// --load-extension=OUT or chrome://extensions → "Load unpacked".
//
//   node extension/build.mjs [OUT] [--manifest-overrides FILE.json]
//
// --manifest-overrides merges a JSON object into manifest.json (tests pin the id with a
// `key` and add host permissions for their public hub).

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..');

export function buildExtension(out = path.join(REPO, 'target/extension'), overrides = {}) {
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(path.join(out, 'icons'), { recursive: true });
  for (const f of ['sw.js', 'settings.js', 'popup.html', 'popup.css', 'popup.js', 'options.html', 'options.css', 'options.js']) fs.copyFileSync(path.join(HERE, f), path.join(out, f));
  fs.cpSync(path.join(REPO, 'clients/js/src'), path.join(out, 'sdk'), { recursive: true });
  fs.copyFileSync(path.join(REPO, 'icons/32x32.png'), path.join(out, 'icons/32.png'));
  fs.copyFileSync(path.join(REPO, 'icons/128x128.png'), path.join(out, 'icons/128.png'));
  const manifest = JSON.parse(fs.readFileSync(path.join(HERE, 'manifest.json'), 'utf8'));
  for (const [k, v] of Object.entries(overrides)) {
    manifest[k] = Array.isArray(v) && Array.isArray(manifest[k]) ? [...new Set([...manifest[k], ...v])] : v;
  }
  fs.writeFileSync(path.join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const i = args.indexOf('--manifest-overrides');
  const overrides = i >= 0 ? JSON.parse(fs.readFileSync(args.splice(i, 2)[1], 'utf8')) : {};
  const out = buildExtension(args[0] ? path.resolve(args[0]) : undefined, overrides);
  console.log(`extension built in ${out}`);
}
