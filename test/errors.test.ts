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
import * as tf from '@tensorflow/tfjs-core';
import { copyInto } from '../worker/backend/read.js';
import { GpuUnavailableError, selectBackend } from '../worker/backend/select.js';
import { readPth } from '../worker/checkpoint/pth.js';
import { registerZapDomain, unregisterZapDomain, ZapDomainConflictError } from '../worker/collectives/zap.js';
import { evalCommand } from '../worker/commands/eval.js';
import { buildTransforms, toNHWCBatch, TransformError } from '../worker/data/transforms.js';
import { assertPrivateFile } from '../worker/sys/shm.js';

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

test("the worker's failures are of the kind that went wrong: settings exit 2, files named, bugs internal", async () => {
  const exitOf = (e: unknown) => describeFailure(e).exitCode;
  // a backend that cannot run is a usage error (not restarted by the agent), like the launcher's own GPU check
  await assert.rejects(selectBackend('webgl' as 'wasm', { gpuAssigned: false, log: () => {} }), (e: Error) => {
    assert.ok(e instanceof UsageError && exitOf(e) === 2, String(e));
    return /unknown backend 'webgl'/.test(e.message);
  });
  const gpu = new GpuUnavailableError('rank 3: a GPU is assigned but ...', 3);
  assert.ok(gpu instanceof UsageError);
  assert.deepEqual([gpu.exitCode, gpu.rank, gpu.name], [2, 3, 'GpuUnavailableError']);

  // eval without weights names the config and the key
  await assert.rejects(evalCommand({ override: [] }), (e: Error) => {
    assert.ok(e instanceof ConfigError, String(e));
    assert.deepEqual([e.file, e.key, e.exitCode], [quickstartConfigPath(), 'pretrained_model', 2]);
    return /^eval: set the weights with -o pretrained_model=/.test(e.message);
  });

  // a transforms list that cannot work is a config error with its key in the data section
  const keyOf = (ops: unknown[]) => {
    try {
      buildTransforms(ops as Parameters<typeof buildTransforms>[0]);
    } catch (e) {
      assert.ok(e instanceof ConfigError, String(e));
      return [e.key, e.exitCode];
    }
    assert.fail('built');
  };
  assert.deepEqual(keyOf([]), ['transforms', 2]);
  assert.deepEqual(keyOf([{ RandCropImage: { size: 224 } }]), ['transforms.0', 2]);
  assert.deepEqual(keyOf([{ DecodeImage: null }, { NormalizeImage: { std: [0, 1, 1] } }]), [
    'transforms.1.NormalizeImage',
    2,
  ]);
  // ... and a sample it cannot use is a data error naming the file (the loader replaces it)
  const dir = tempDir('errors-worker');
  const notImage = path.join(dir, 'not_an_image.jpg');
  fs.writeFileSync(notImage, 'plain text');
  const fn = buildTransforms([{ DecodeImage: null }]);
  await assert.rejects(fn({ path: notImage }), (e: Error) => {
    assert.ok(e instanceof TransformError && e instanceof DataError, String(e));
    assert.equal(e.file, notImage);
    return e.message.includes(notImage);
  });
  await assert.rejects(fn({ path: path.join(dir, 'missing.jpg') }), (e: Error) => {
    return e instanceof DataError && e.file === path.join(dir, 'missing.jpg') && /ENOENT/.test(e.message);
  });

  // a .pth path that is not a regular file is a checkpoint error carrying the path
  await assert.rejects(readPth(dir), (e: Error) => {
    assert.ok(e instanceof CheckpointError, String(e));
    assert.equal(e.path, dir);
    return /cannot read \.pth file: not a regular file/.test(e.message);
  });

  // a job file someone else can read is refused as a usage error: a restart would meet the same file
  const open = path.join(dir, 'ring0.0.bin');
  fs.writeFileSync(open, '', { mode: 0o644 });
  fs.chmodSync(open, 0o644);
  const fd = fs.openSync(open, 'r');
  try {
    assert.throws(
      () => assertPrivateFile(fd, `shared-memory file ${open}`),
      (e: Error) =>
        e instanceof UsageError && exitOf(e) === 2 && /is not a private file of this user .*mode 644/.test(e.message),
    );
  } finally {
    fs.closeSync(fd);
  }

  // programming errors stay the language's own, reported as internal
  const ints = tf.tensor1d([1, 2], 'int32');
  assert.throws(() => copyInto(ints, new Float32Array(2), 0), TypeError);
  ints.dispose();
  assert.throws(() => toNHWCBatch([]), RangeError);
  const domain = `errors-test-${process.pid}`;
  await registerZapDomain(domain, { mechanism: 'PLAIN', username: 'a', password: 'b' });
  try {
    await assert.rejects(
      registerZapDomain(domain, { mechanism: 'PLAIN', username: 'a', password: 'c' }),
      (e: Error) => {
        assert.ok(e instanceof ZapDomainConflictError && !(e instanceof HardnetError));
        return /internal error/.test(describeFailure(e).line) && exitOf(e) === 1;
      },
    );
  } finally {
    unregisterZapDomain(domain);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});
