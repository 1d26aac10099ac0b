/**
 * A worker for the launcher's hang test: joins the job's real process group (worker/collectives) with a short
 * collective timeout, records its pid in DIR/rank<R>.restart0.json, then all-reduces in a loop. A collective
 * error ends it with exit code 1 and the error on stderr, as the trainer does. Without --out it does nothing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { readWorkerEnv } from '../../shared/env.js';
import { createProcessGroup } from '../../worker/collectives/index.js';

const { values: o } = parseArgs({
  options: {
    out: { type: 'string' },
    'timeout-ms': { type: 'string', default: '2000' },
    steps: { type: 'string', default: '100000' },
  },
});
if (o.out === undefined) process.exit(0);

const env = readWorkerEnv();
try {
  const group = await createProcessGroup(env, {
    timeoutMs: Number(o['timeout-ms']),
    warnAfterMs: 500,
    heartbeatMs: 250,
  });
  const file = path.join(o.out, `rank${env.rank}.restart0.json`);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify({ pid: process.pid, env: { HARDNET_JOB_ID: env.jobId } }));
  fs.renameSync(`${file}.tmp`, file);
  const buf = new Float32Array(1024);
  for (let step = 0; step < Number(o.steps); step++) {
    buf.fill(env.rank);
    await group.allReduce(buf, 'sum');
    await new Promise((r) => setTimeout(r, 20));
  }
  console.log(`rank ${env.rank} of ${env.worldSize}: all-reduced sum ${buf[0]}`);
  await group.close();
} catch (e) {
  console.error(`rank ${env.rank}: ${(e as Error).message}`);
  process.exit(1);
}
