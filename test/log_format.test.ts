import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bestLine, endLine, pyFixed, timestampPrefix, trainLine, validLine } from '../shared/log_format.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const REFERENCE = fs.readFileSync(path.resolve(REPO_ROOT, 'test/fixtures/reference/paddleclas.md'), 'utf8');

/** The example line in the reference that starts with `start` (between backticks). */
function referenceLine(start: string): string {
  const m = new RegExp('`(' + start.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '[^`]*)`').exec(REFERENCE);
  assert.ok(m, `reference line starting with ${start}`);
  return m[1];
}

test('the train step line equals the reference example character by character', () => {
  const expected = referenceLine('epoch:0  , train step:10');
  // top5 is 1/64 = 0.015625 exactly: Python prints 0.01562 (round half to even), toFixed would print 0.01563
  const line = trainLine({
    epoch: 0,
    step: 10,
    top1: 0,
    top5: 1 / 64,
    loss: 7.157271,
    lr: 0.05,
    batchCost: 0.261718,
    readerCost: 0.0015,
    ips: 244.540052,
  });
  assert.equal(line, expected);
});

test('the END line (with its double space) and the best line equal the reference', () => {
  const expected = referenceLine('END epoch:0');
  const line = endLine({
    epoch: 0,
    mode: 'valid',
    top1: 0.758784,
    top5: 0.927181,
    loss: 0.969129,
    batchCost: 0.157021,
    readerCost: 0.109841,
    batchCostSum: 121.218821,
    ips: 101.898372,
  });
  assert.equal(line, expected);
  assert.ok(REFERENCE.includes(bestLine(0.758784, 0)), bestLine(0.758784, 0));
  assert.equal(bestLine(0.758784, 0), 'The best top1 acc 0.75878, in epoch: 0');
});

test('valid lines print lr 0, widths pad to {:<3d}/{:<4d}, mixup drops the accuracy fields', () => {
  assert.equal(
    validLine({
      epoch: 12,
      step: 100,
      top1: 0.75,
      top5: 0.921875,
      loss: 0.96913,
      batchCost: 0.15702,
      readerCost: 0.10984,
      ips: 407.5,
    }),
    'epoch:12 , valid step:100 , top1: 0.75000, top5: 0.92188, loss: 0.96913, lr: 0.000000, batch_cost: 0.15702 s, reader_cost: 0.10984 s, ips: 407.50000 images/sec.',
  );
  assert.equal(
    trainLine({ epoch: 149, step: 12345, loss: 12.5, lr: 1.25e-7, batchCost: 1, readerCost: 0, ips: 64 }),
    'epoch:149, train step:12345, loss: 12.50000, lr: 0.000000, batch_cost: 1.00000 s, reader_cost: 0.00000 s, ips: 64.00000 images/sec.',
  );
  assert.equal(
    endLine({ epoch: 3, mode: 'train', loss: 0.5, batchCost: 0.25, readerCost: 0.001, batchCostSum: 58.5, ips: 1024 }),
    'END epoch:3   train loss: 0.50000,  batch_cost: 0.25000 s, reader_cost: 0.00100 s, batch_cost_sum: 58.50000 s, ips: 1024.00000 images/sec.',
  );
});

test('pyFixed rounds like Python format (exact ties to even), toFixed otherwise', () => {
  // values checked against python3 '{:.Nf}'.format(x)
  const cases: [number, number, string][] = [
    [0.125, 2, '0.12'],
    [0.375, 2, '0.38'],
    [-0.125, 2, '-0.12'],
    [2.5, 0, '2'],
    [3.5, 0, '4'],
    [1 / 64, 5, '0.01562'],
    [3 / 64, 5, '0.04688'],
    [0.05, 6, '0.050000'],
    [1e-7, 5, '0.00000'],
    [-0, 6, '-0.000000'],
    [0.1 + 0.2, 5, '0.30000'],
    [1.005, 2, '1.00'],
    [244.540052, 5, '244.54005'],
    [Infinity, 5, 'inf'],
    [NaN, 5, 'nan'],
  ];
  for (const [x, d, want] of cases) assert.equal(pyFixed(x, d), want, `${x} .${d}f`);
});

test('timestamp prefix is Python logging\'s "%Y-%m-%d %H:%M:%S LEVEL: " in local time', () => {
  assert.equal(timestampPrefix(new Date(2021, 2, 1, 9, 5, 7)), '2021-03-01 09:05:07 INFO: ');
  assert.equal(timestampPrefix(new Date(2021, 11, 31, 23, 59, 59), 'WARNING'), '2021-12-31 23:59:59 WARNING: ');
});

test('createWorkerLogger prints prefixed lines to stdout; other ranks only warnings; logFile gets them too', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'logfmt-'));
  const logFile = path.join(dir, 'rank0.log');
  fs.writeFileSync(logFile, 'left over from an earlier run\n');
  const mod = path.resolve(REPO_ROOT, 'dist/shared/log_format.js');
  const script = `
    const { createWorkerLogger } = await import(${JSON.stringify(mod)});
    const r0 = createWorkerLogger({ rank: 0, logFile: ${JSON.stringify(logFile)} });
    const r1 = createWorkerLogger({ rank: 1 });
    r0.info('epoch:0  , train step:0');
    r1.info('hidden on rank 1');
    r1.warn('a warning from rank 1');
    r0.end();`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  const lines = out.trim().split('\n');
  assert.equal(lines.length, 2, out);
  assert.match(lines[0], /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO: epoch:0 {2}, train step:0$/);
  assert.match(lines[1], /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d WARNING: a warning from rank 1$/);
  const file = fs.readFileSync(logFile, 'utf8');
  assert.match(file, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO: epoch:0 {2}, train step:0\n$/);
});
