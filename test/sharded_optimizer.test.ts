/**
 * ZeRO stage 1 (sharded_optimizer) across real worker processes: k sharded steps (reduce-scatter, each rank's
 * segment updated, weights all-gathered) give the weights and velocities of k plain all-reduce steps bit for bit;
 * a checkpoint of the sharded run resumed for k more steps gives those of 2k plain steps; and the same holds on
 * the device optimizer (cpu backend) resuming the wasm run's checkpoint, with the same bits as on wasm.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnGroup, type RankOutcome } from './helpers/spawn_group.js';

const worker = path.join(path.dirname(fileURLToPath(import.meta.url)), 'helpers', 'sharded_worker.js');

interface Shas {
  weights: string;
  velocities: string;
}
interface Result {
  atK: { plain: Shas; sharded: Shas };
  plain: Shas;
  resumed: Shas;
}

async function run(np: number, args: object): Promise<Result[]> {
  const out: RankOutcome[] = await (
    await spawnGroup({ np, script: worker, args: [JSON.stringify({ steps: 3, ...args })] })
  ).done;
  for (const o of out) assert.equal(o.code, 0, `rank ${o.rank}: ${o.error?.message ?? o.stderr}`);
  return out.map((o) => {
    const { rank: _rank, ...result } = o.result;
    return result as Result;
  });
}

function assertSharded(results: Result[], what: string): void {
  results.forEach((r, rank) => {
    assert.deepEqual(r.atK.sharded, r.atK.plain, `${what}, rank ${rank}: k sharded steps differ from k plain ones`);
    assert.deepEqual(r.resumed, r.plain, `${what}, rank ${rank}: the resumed sharded run differs from 2k plain steps`);
    assert.deepEqual(r, results[0], `${what}: rank ${rank} differs from rank 0`);
  });
  assert.notEqual(results[0].atK.plain.weights, results[0].plain.weights, `${what}: the steps changed nothing`);
}

test('sharded optimizer: bit-identical to the plain update, through a checkpoint, on wasm and on the device path', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sharded-'));
  try {
    const wasm = await run(2, { backend: 'wasm', dir });
    assertSharded(wasm, 'wasm, 2 ranks');
    // the device optimizer resumes the wasm run's checkpoint and lands on the same bits
    const cpu = await run(2, { backend: 'cpu', dir: path.join(dir, 'cpu'), resumeFrom: path.join(dir, '3') });
    assertSharded(cpu, 'cpu, 2 ranks');
    assert.deepEqual(cpu[0].plain, wasm[0].plain, 'the cpu backend trains other bits than wasm');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('sharded optimizer on 3 ranks with float16 gradients on the wire: still bit-identical to the plain update', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sharded-'));
  try {
    assertSharded(await run(3, { backend: 'wasm', dir, wireDtype: 'float16' }), 'wasm, 3 ranks, float16');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
