#!/usr/bin/env node
// The SDK README's example, as code: `readmeExample()` returns its code block, and
// `buildMv3Example(out)` assembles a loadable MV3 extension whose service worker is that
// block, with the package specifier pointed at a copy of the SDK (what a bundler would
// do). The SDK's tests run the block in Node and this extension in Chromium, so the
// README cannot drift from code that runs.
//
//   node clients/js/examples/build.mjs [OUT]     # default target/sdk-example-extension

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SDK = path.resolve(HERE, '..');
const REPO = path.resolve(SDK, '../..');
/** The specifier the example imports; the package's name. */
export const SPECIFIER = '@semantest/hub-client';

/**
 * The first ```js block under the README's "## Example" heading.
 * @throws {Error} when the README has no such block
 */
export function readmeExample(readme = path.join(SDK, 'README.md')) {
  const text = fs.readFileSync(readme, 'utf8');
  const m = /^## Example\n[\s\S]*?^```js\n([\s\S]*?)^```$/m.exec(text);
  if (!m) throw new Error(`${readme}: no \`\`\`js block under "## Example"`);
  return m[1];
}

/** Writes the example extension to `out` (replaced) and returns `out`. */
export function buildMv3Example(out = path.join(REPO, 'target/sdk-example-extension')) {
  const code = readmeExample();
  if (!code.includes(`'${SPECIFIER}'`)) throw new Error(`the README example does not import '${SPECIFIER}'`);
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  fs.copyFileSync(path.join(HERE, 'mv3/manifest.json'), path.join(out, 'manifest.json'));
  fs.writeFileSync(path.join(out, 'sw.js'), code.replaceAll(`'${SPECIFIER}'`, "'./sdk/index.js'"));
  fs.cpSync(path.join(SDK, 'src'), path.join(out, 'sdk'), { recursive: true });
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = buildMv3Example(process.argv[2] ? path.resolve(process.argv[2]) : undefined);
  console.log(`example extension built in ${out}`);
}
