/**
 * The arrows between the project's rooms (DEVELOPERS.md, "Imports run one way"): shared/ imports neither worker/
 * nor launcher/; launcher/ does not import worker/; the worker does not import the launcher; model/ does not
 * import checkpoint/ (checkpoints are made of models, not the other way round: checkpoint/ may use model/);
 * the launcher and shared/ load none of tfjs, sharp or zeromq. Read from the source without its comments:
 * every static import, re-export, literal dynamic import (also of `new URL(..., import.meta.url)`) and require.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** [from-prefix, to-prefix, why] */
const FORBIDDEN: [string, string, string][] = [
  ['shared/', 'worker/', 'shared/ is what both sides use'],
  ['shared/', 'launcher/', 'shared/ is what both sides use'],
  ['launcher/', 'worker/', 'the launcher starts workers, it does not run their code'],
  ['worker/', 'launcher/', 'a worker does not depend on who started it'],
  ['worker/model/', 'worker/checkpoint/', 'checkpoints are made of models, not the other way round'],
];

/** Packages a side must not load: the launcher and shared/ stay free of the compute, the images and the sockets. */
const FORBIDDEN_PACKAGES: [string, RegExp, string][] = [
  ['launcher/', /^(@tensorflow\/|sharp$|zeromq$)/, 'the launcher runs no model, no images and no ring'],
  ['shared/', /^(@tensorflow\/|sharp$|zeromq$)/, 'shared/ is loaded by the launcher too'],
];

/** static imports and re-exports, `import('x')`, `import(new URL('x', import.meta.url)...)` and `require('x')` */
const IMPORT_RE =
  /(?:\bimport\s[^'"`;]*?from\s*|\bexport\s[^'"`;]*?from\s*|\bimport\s*\(\s*(?:new\s+URL\s*\(\s*)?|\bimport\s+|\brequire\s*\(\s*)['"`]([^'"`$]+)['"`]/g;

/** The source without its comments (an import named in a comment is no arrow); strings are left alone. */
function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\/|(^|[^:'"`\\])\/\/[^\n]*/g, (_m, before: string | undefined) => before ?? '');
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
    const rel = path.posix.join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(rel));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

/** Every forbidden arrow in `files` (path relative to the root -> its source text). */
export function forbiddenArrows(files: Map<string, string>): string[] {
  const found: string[] = [];
  for (const [file, text] of files) {
    for (const m of withoutComments(text).matchAll(IMPORT_RE)) {
      const spec = m[1];
      if (spec.startsWith('.')) {
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec));
        for (const [from, to, why] of FORBIDDEN) {
          if (file.startsWith(from) && target.startsWith(to))
            found.push(`${file} imports ${spec} (${from} -> ${to}: ${why})`);
        }
      } else {
        for (const [from, pkg, why] of FORBIDDEN_PACKAGES) {
          if (file.startsWith(from) && pkg.test(spec))
            found.push(`${file} imports ${spec} (${from} -> ${spec}: ${why})`);
        }
      }
    }
  }
  return found;
}

test('the checker finds a forbidden arrow of each kind, and only those', () => {
  const tree = new Map([
    ['shared/a.ts', "import { x } from '../worker/model/hardnet.js';\nimport { y } from './b.js';"],
    [
      'launcher/c.ts',
      "export { z } from '../worker/collectives/secret.js';\nconst m = await import('../shared/x.js');",
    ],
    ['worker/model/d.ts', "import type { S } from '../checkpoint/pth.js';"],
    ['worker/checkpoint/e.ts', "import type { HarDNet } from '../model/hardnet.js';"],
    ['worker/f.ts', "const { run } = await import('../launcher/agent.js');"],
    [
      'launcher/g.ts',
      "const w = await import(new URL('../worker/main.js', import.meta.url).href);\nimport * as zmq from 'zeromq';",
    ],
    [
      'shared/h.ts',
      "const tf = require('@tensorflow/tfjs-core');\n// import { q } from '../worker/q.js';\n/* import('../launcher/x.js') */",
    ],
    [
      'launcher/i.ts',
      "const MAIN = fileURLToPath(new URL('../worker/main.js', import.meta.url)); // spawned, not imported",
    ],
  ]);
  const arrows = forbiddenArrows(tree);
  assert.equal(arrows.length, 7, arrows.join('\n'));
  const all = arrows.join('\n');
  assert.match(all, /shared\/a\.ts imports \.\.\/worker\/model\/hardnet\.js/);
  assert.match(all, /launcher\/c\.ts imports \.\.\/worker\/collectives\/secret\.js/);
  assert.match(all, /worker\/model\/d\.ts imports \.\.\/checkpoint\/pth\.js/);
  assert.match(all, /worker\/f\.ts imports \.\.\/launcher\/agent\.js/);
  assert.match(all, /launcher\/g\.ts imports \.\.\/worker\/main\.js/);
  assert.match(all, /launcher\/g\.ts imports zeromq/);
  assert.match(all, /shared\/h\.ts imports @tensorflow\/tfjs-core/);
});

test('the source tree has no forbidden import arrow', () => {
  const files = new Map(
    ['shared', 'launcher', 'worker']
      .flatMap(sourceFiles)
      .map((f) => [f, fs.readFileSync(path.join(ROOT, f), 'utf8')] as const),
  );
  assert.ok(files.size > 50, `read ${files.size} files`);
  assert.deepEqual(forbiddenArrows(files), []);
});
