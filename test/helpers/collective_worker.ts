/**
 * A worker process for the collectives tests and the all-reduce benchmark: reads the env contract and the
 * secret pipe like a training worker, runs one scenario, prints `RESULT <json>` or `ERROR <json>`.
 *   node collective_worker.js <scenario> '<json args>'
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { readWorkerEnv, shmJobDir } from '../../shared/env.js';
import { type CollectiveError, createProcessGroup, type ProcessGroup } from '../../worker/collectives/index.js';
import type { RingTiming } from '../../worker/collectives/process_group.js';
import { fill, value } from './collective_data.js';

const scenario = process.argv[2];
const args = JSON.parse(process.argv[3] ?? '{}');
const env = readWorkerEnv();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (a: Float32Array) =>
  createHash('sha256')
    .update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
    .digest('hex');

/** allReduce one deterministic buffer and compare with the float64 sum of all ranks' data. */
async function checkedAllReduce(pg: ProcessGroup, size: number, op: 'sum' | 'mean', half: boolean) {
  const N = pg.worldSize;
  const buf = new Float32Array(size);
  fill(buf, pg.rank);
  await pg.allReduce(buf, op);
  // float32 ring: each of the N-1 additions rounds once (plus the division for mean); float16 also rounds each hop
  const unit = half ? 2 ** -11 : 2 ** -24;
  let worst = 0;
  let ok = true;
  // every element is compared on small buffers; large ones (17.6M) on a strided sample plus the first and last
  // 4096 (the byte-identical hash across ranks covers the rest), to keep the test at seconds
  const stride = size > 1_000_000 ? 61 : 1;
  for (let i = 0; i < size; i += i < 4096 || i >= size - 4096 ? 1 : stride) {
    let exact = 0;
    let abs = 0;
    for (let r = 0; r < N; r++) {
      const v = value(r, size, i);
      exact += v;
      abs += Math.abs(v);
    }
    if (op === 'mean') {
      exact /= N;
      abs /= N;
    }
    const err = Math.abs(buf[i] - exact);
    const bound = (N + 1) * unit * abs + (half ? 2 ** -24 : 0);
    if (err > bound) ok = false;
    if (abs > 0) worst = Math.max(worst, err / abs);
  }
  return { size, op, sha: sha(buf), ok, worstRelErr: worst };
}

async function main(): Promise<unknown> {
  const log = (level: string, msg: string) => process.stderr.write(`[${level}] ${msg}\n`);
  const pg = await createProcessGroup(env, {
    timeoutMs: args.timeoutMs,
    warnAfterMs: args.warnAfterMs,
    heartbeatMs: args.heartbeatMs,
    wireDtype: scenario === 'mismatch' && env.rank === 1 && args.rank1Dtype ? args.rank1Dtype : args.wireDtype,
    chunkBytes: args.chunkBytes,
    security: args.security,
    sharedMemory: env.rank === args.noShmRank ? false : args.sharedMemory,
    log,
  });
  try {
    switch (scenario) {
      case 'exact': {
        const half = args.wireDtype === 'float16';
        const reduced = [];
        for (const size of args.sizes as number[])
          for (const op of (args.ops ?? ['sum']) as ('sum' | 'mean')[])
            reduced.push(await checkedAllReduce(pg, size, op, half));
        // broadcast from the last rank: everyone must end with its bytes
        const root = pg.worldSize - 1;
        // the other ranks start from a constant (filling 17.6M pseudo-random floats costs seconds per rank)
        const b = new Float32Array(args.broadcastSize ?? 1000);
        if (pg.rank === root) fill(b, root);
        else b.fill(pg.rank + 0.5);
        await pg.broadcast(b, root);
        const expected = new Float32Array(b.length);
        fill(expected, root);
        const gathered = await pg.allGather(Array.from({ length: pg.rank % 3 }, (_, k) => pg.rank * 10 + k + 0.5));
        const gatherOk = gathered.every(
          (v, r) => JSON.stringify(v) === JSON.stringify(Array.from({ length: r % 3 }, (_, k) => r * 10 + k + 0.5)),
        );
        await pg.barrier();
        // every reader has opened (and so unlinked) its predecessor's shared-memory files by now
        const shmDir = shmJobDir(env.jobId);
        const shmLeft = fs.existsSync(shmDir) ? fs.readdirSync(shmDir) : [];
        return {
          reduced,
          broadcastOk: Buffer.from(b.buffer).equals(Buffer.from(expected.buffer)),
          gatherOk,
          allReducePayloadBytes: pg.bytesSent.allReduce,
          shmLeft,
          description: pg.description,
        };
      }
      case 'fault': {
        const buf = new Float32Array(args.size ?? 100_000);
        await pg.allReduce(buf, 'sum');
        if (pg.rank === args.victim) {
          // allReduce resolves once its last messages are queued, not written: let zeromq's I/O thread hand them
          // to the successor first, so the others finish #2 and it is #3 that the victim misses
          await sleep(300);
          if (args.mode === 'exit') process.exit(3);
          if (args.mode === 'stop') process.kill(process.pid, 'SIGSTOP');
          if (args.mode === 'hang') await sleep(600_000);
        }
        const t0 = Date.now();
        await pg.allReduce(buf, 'sum');
        return { unexpectedSuccess: true, ms: Date.now() - t0 };
      }
      case 'bench': {
        // nccl-tests / gloo_allreduce.py timing: barrier, time one allReduce on each rank, take the max over
        // ranks per repetition and the median over repetitions
        const rows = [];
        for (const bytes of args.sizes as number[]) {
          const buf = new Float32Array(Math.floor(bytes / 4));
          const times: number[] = [];
          let ok = true;
          // per-op cost on this rank over the timed repetitions: CPU of all threads (zeromq's I/O thread
          // included), minor page faults, and the ring's own split of the main thread's time
          const timing = (pg as { timing?: RingTiming }).timing;
          let cpu = { user: 0, system: 0 };
          let faults = 0;
          const split = { recvWaitMs: 0, sumMs: 0, copyMs: 0, sendMs: 0, messages: 0 };
          for (let rep = 0; rep < args.warmup + args.reps; rep++) {
            buf.fill(1);
            await pg.barrier();
            const before = {
              cpu: process.cpuUsage(),
              faults: process.resourceUsage().minorPageFault,
              split: timing && { ...timing },
            };
            const t0 = process.hrtime.bigint();
            await pg.allReduce(buf, 'sum');
            const dt = Number(process.hrtime.bigint() - t0) / 1e6;
            if (rep >= args.warmup) {
              times.push(dt);
              const c = process.cpuUsage(before.cpu);
              cpu = { user: cpu.user + c.user, system: cpu.system + c.system };
              faults += process.resourceUsage().minorPageFault - before.faults;
              if (timing && before.split)
                for (const k of Object.keys(split) as (keyof typeof split)[]) split[k] += timing[k] - before.split[k];
            }
            ok &&= buf.length === 0 || (buf[0] === pg.worldSize && buf[buf.length - 1] === pg.worldSize);
          }
          const per = (x: number) => x / Math.max(1, args.reps);
          const mine = [
            cpu.user / 1e3,
            cpu.system / 1e3,
            faults,
            split.recvWaitMs,
            split.sumMs,
            split.copyMs,
            split.sendMs,
            split.messages,
          ].map(per);
          const all = await pg.allGather([...times, ok ? 1 : 0, ...mine]);
          const R = times.length;
          const perRep = times.map((_, k) => Math.max(...all.map((t) => t[k])));
          const mean = (k: number) => all.reduce((a, t) => a + t[R + 1 + k], 0) / all.length;
          const profile = {
            cpuUserMs: mean(0),
            cpuSysMs: mean(1),
            minorFaults: mean(2),
            recvWaitMs: mean(3),
            sumMs: mean(4),
            copyMs: mean(5),
            sendMs: mean(6),
            messages: mean(7),
          };
          rows.push({ bytes: buf.length * 4, times_ms: perRep, ok: all.every((t) => t[R] === 1), profile });
        }
        return { rows };
      }
      case 'repeat': {
        // rounds of allReduce while something else happens (strangers knocking): report every round's hash
        const hashes: string[] = [];
        let ok = true;
        for (let round = 0; round < args.rounds; round++) {
          const res = await checkedAllReduce(pg, args.size, 'sum', false);
          hashes.push(res.sha);
          ok &&= res.ok;
          await sleep(args.pauseMs ?? 20);
        }
        return { hashes, ok };
      }
      case 'control': {
        // each size twice, the same data: once without control bits, once with this rank's bits; the values must
        // not change, and every rank must return the OR of all ranks' bits from the same call
        const bits = (args.bits as number[])[pg.rank] ?? 0;
        const rows = [];
        for (const size of args.sizes as number[]) {
          const plain = new Float32Array(size);
          fill(plain, pg.rank);
          const plainControl = await pg.allReduce(plain, 'mean');
          const buf = new Float32Array(size);
          fill(buf, pg.rank);
          const control = await pg.allReduce(buf, 'mean', bits);
          // the call after one with bits starts from none again
          const after = await pg.allReduce(new Float32Array(size), 'sum');
          rows.push({ size, plainControl, control, after, sameValues: sha(buf) === sha(plain), sha: sha(buf) });
        }
        return { rows };
      }
      case 'halves': {
        // reduceScatter then allGatherInPlace must give allReduce's bytes; the owned segment right after the first
        const bits = (args.bits as number[])[pg.rank] ?? 0;
        const rows = [];
        for (const size of args.sizes as number[]) {
          const whole = new Float32Array(size);
          fill(whole, pg.rank);
          await pg.allReduce(whole, 'mean');
          const buf = new Float32Array(size);
          fill(buf, pg.rank);
          const control = await pg.reduceScatter(buf, 'mean', bits);
          const [start, end] = pg.ownedSegment(size);
          const ownedOk = sha(buf.subarray(start, end)) === sha(whole.subarray(start, end));
          await pg.allGatherInPlace(buf);
          rows.push({ size, control, owned: end - start, ownedOk, sameBytes: sha(buf) === sha(whole) });
        }
        return { rows };
      }
      case 'mismatch': {
        const size = pg.rank === 1 ? args.size + (args.sizeDelta ?? 0) : args.size;
        const buf = new Float32Array(size);
        fill(buf, pg.rank);
        await pg.allReduce(buf, 'sum');
        return { unexpectedSuccess: true };
      }
      default:
        throw new Error(`unknown scenario ${scenario}`);
    }
  } finally {
    await pg.close();
  }
}

main().then(
  (result) => {
    process.stdout.write(`RESULT ${JSON.stringify({ rank: env.rank, ...(result as object) })}\n`);
  },
  (err) => {
    const e = err as CollectiveError;
    process.stdout.write(`ERROR ${JSON.stringify({ message: e.message, culprit: e.culprit, seq: e.seq })}\n`);
    process.exitCode = 1;
  },
);
