/**
 * Gradient equivalence: one data-parallel step on 2 and 4 workers gives the same averaged gradient as one
 * process on the concatenated batch (within 1e-5 relative), and identical weights on every rank after SGD.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnGroup, type RankOutcome } from './helpers/spawn_group.js';

const worker = path.join(path.dirname(fileURLToPath(import.meta.url)), 'helpers', 'collective_grad_worker.js');

async function step(np: number): Promise<RankOutcome[]> {
  const out = await (await spawnGroup({ np, script: worker })).done;
  for (const o of out) assert.equal(o.code, 0, `N=${np} rank ${o.rank}: ${o.error?.message ?? o.stderr}`);
  return out;
}

function maxRelDiff(a: number[], b: number[]): number {
  const scale = Math.max(...b.map(Math.abs));
  return Math.max(...a.map((v, i) => Math.abs(v - b[i]))) / scale;
}

test('data-parallel step on 2 and 4 workers equals one process on the whole batch', async () => {
  const [single] = await step(1);
  for (const np of [2, 4]) {
    const out = await step(np);
    for (const o of out) {
      const d = maxRelDiff(o.result.grad, single.result.grad);
      assert.ok(
        d <= 1e-5,
        `N=${np} rank ${o.rank}: averaged gradient differs by ${d} (relative) from the single-process one`,
      );
      assert.equal(
        o.result.weightsSha,
        out[0].result.weightsSha,
        `N=${np} rank ${o.rank}: weights after the step differ from rank 0's`,
      );
      assert.ok(maxRelDiff(o.result.weights, single.result.weights) <= 1e-5);
    }
    // the gradient is not trivially zero, so the comparison means something
    assert.ok(Math.max(...single.result.grad.map(Math.abs)) > 1e-3);
  }
});
