/**
 * The arrows between the project's rooms (DEVELOPERS.md, "Imports run one way"): shared/ imports neither worker/
 * nor launcher/; launcher/ does not import worker/; the worker does not import the launcher; model/ does not
 * import checkpoint/ (checkpoints are made of models, not the other way round). Read from the source: every
 * static import, re-export and literal dynamic import of a relative path.
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

const IMPORT_RE = /(?:\bimport\s[^'"]*?from\s*|\bexport\s[^'"]*?from\s*|\bimport\s*\(\s*|\bimport\s+)['"](\.{1,2}\/[^'"]+)['"]/g;

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
    for (const m of text.matchAll(IMPORT_RE)) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), m[1]));
      for (const [from, to, why] of FORBIDDEN) {
        if (file.startsWith(from) && target.startsWith(to)) found.push(`${file} imports ${m[1]} (${from} -> ${to}: ${why})`);
      }
    }
  }
  return found;
}

test('the checker finds a forbidden arrow of each kind, and only those', () => {
  const tree = new Map([
    ['shared/a.ts', "import { x } from '../worker/model/hardnet.js';\nimport { y } from './b.js';"],
    ['launcher/c.ts', "export { z } from '../worker/collectives/secret.js';\nconst m = await import('../shared/x.js');"],
    ['worker/model/d.ts', "import type { S } from '../checkpoint/pth.js';"],
    ['worker/checkpoint/e.ts', "import type { HarDNet } from '../model/hardnet.js';"],
    ['worker/f.ts', "const { run } = await import('../launcher/agent.js');"],
  ]);
  const arrows = forbiddenArrows(tree);
  assert.equal(arrows.length, 4, arrows.join('\n'));
  assert.match(arrows.join('\n'), /shared\/a\.ts imports \.\.\/worker\/model\/hardnet\.js/);
  assert.match(arrows.join('\n'), /launcher\/c\.ts imports \.\.\/worker\/collectives\/secret\.js/);
  assert.match(arrows.join('\n'), /worker\/model\/d\.ts imports \.\.\/checkpoint\/pth\.js/);
  assert.match(arrows.join('\n'), /worker\/f\.ts imports \.\.\/launcher\/agent\.js/);
});

test('the source tree has no forbidden import arrow', () => {
  const files = new Map(['shared', 'launcher', 'worker'].flatMap(sourceFiles).map((f) => [f, fs.readFileSync(path.join(ROOT, f), 'utf8')] as const));
  assert.ok(files.size > 50, `read ${files.size} files`);
  assert.deepEqual(forbiddenArrows(files), []);
});
