/** The few error kinds (shared/errors.ts) and what the CLI makes of them: one line, exit 2 for usage and config. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import {
  CheckpointError,
  CollectiveError,
  ConfigError,
  DataError,
  describeFailure,
  HardnetError,
  UsageError,
} from '../shared/errors.js';
import { LaunchError } from '../launcher/plan.js';
import { loadConfig, quickstartConfigPath } from '../shared/config.js';
import { EnvError } from '../shared/env.js';
import { SecretError } from '../shared/job_secret.js';
import { DatasetError } from '../worker/data/dataset.js';
import { CollectiveError as LinkCollectiveError } from '../worker/collectives/link.js';
import { CLI, tempDir } from './helpers/launcher_spawn.js';

test('each error kind carries what it names and its exit code', () => {
  const c = new ConfigError('cfg.yaml: config key epochs: must be >= 1', 'cfg.yaml', 'epochs');
  // what the config loader throws names its file and key
  const thrown = (() => {
    try {
      loadConfig(undefined, ['epochs=zero'], { warn: () => {} });
    } catch (e) {
      return e as ConfigError;
    }
  })();
  assert.ok(thrown instanceof ConfigError);
  assert.deepEqual([thrown.file, thrown.key], [quickstartConfigPath(), 'epochs']);
  assert.ok(c instanceof UsageError && c instanceof HardnetError);
  assert.deepEqual([c.exitCode, c.file, c.key, c.name], [2, 'cfg.yaml', 'epochs', 'ConfigError']);
  assert.deepEqual([new DataError('x', 'a.jpg').file, new DataError('x').exitCode], ['a.jpg', 1]);
  assert.deepEqual([new CheckpointError('x', 'ck/3').path, new CheckpointError('x').exitCode], ['ck/3', 1]);
  const k = new CollectiveError('rank 1: allReduce #4 timed out', 2, 4);
  assert.deepEqual([k.culprit, k.seq, k.exitCode], [2, 4, 1]);
  assert.equal(LinkCollectiveError, CollectiveError, 'the collectives throw the shared class');
  for (const e of [new LaunchError('l'), new EnvError('e'), new SecretError('s')]) assert.equal(e.exitCode, 2, e.name);
  assert.ok(new DatasetError('d') instanceof DataError);
  assert.deepEqual(describeFailure(new ConfigError('bad key')), { exitCode: 2, line: 'bad key' });
  assert.deepEqual(describeFailure(new TypeError('bug')), {
    exitCode: 1,
    line: 'TypeError: bug (an internal error; HARDNET_DEBUG=1 prints the stack)',
  });
  assert.equal(
    describeFailure(new DataError('cannot read a.jpg', 'a.jpg', { cause: new Error('EACCES') })).line,
    'cannot read a.jpg (EACCES)',
  );
});

function launch(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 120_000 });
  // the lines that say what went wrong (infer also prints which backend runs, on stderr)
  return {
    code: r.status,
    lines: r.stderr
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('backend: ')),
  };
}

test('the CLI ends a usage error with one line and exit 2, a failed run with one line and exit 1', () => {
  const dir = tempDir('errors');
  const missing = launch(['infer', '--model', 'HarDNet39ds', '--pretrained_model', path.join(dir, 'w.pth')]);
  assert.equal(missing.code, 2);
  assert.deepEqual(missing.lines, ['error: infer: -i/--image_file is required (an image file or a folder)']);

  const unknown = launch(['summary', '--model', 'HarDNet86']);
  assert.equal(unknown.code, 2);
  assert.equal(unknown.lines.length, 1);
  assert.match(unknown.lines[0], /^error: unknown architecture 'HarDNet86'; closest valid names: /);

  // a corrupt weights file is a failure of the run, not of the command line
  const bad = path.join(dir, 'bad.pth');
  fs.writeFileSync(bad, 'not a pth file');
  const img = path.resolve(path.dirname(CLI), '../../test/fixtures/images/grey.png');
  const corrupt = launch(['infer', '-i', img, '--model', 'HarDNet39ds', '--pretrained_model', bad]);
  assert.equal(corrupt.code, 1);
  assert.equal(corrupt.lines.length, 1, corrupt.lines.join('\n'));
  assert.match(corrupt.lines[0], new RegExp(`^error: ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  fs.rmSync(dir, { recursive: true, force: true });
});
