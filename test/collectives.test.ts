/**
 * allReduce / broadcast / allGather / barrier across real worker processes (ring over ipc:// and tcp://):
 * byte-identical results on every rank, equal to the float64 sum within float32 rounding.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnGroup, type RankOutcome } from './helpers/spawn_group.js';
import { createProcessGroup } from '../worker/collectives/index.js';
import { readWorkerEnv } from '../shared/env.js';
import { nativeShm, shmUnavailable } from '../worker/collectives/shm.js';
import * as fs from 'node:fs';
import * as os from 'node:os';

const worker = path.join(path.dirname(fileURLToPath(import.meta.url)), 'helpers', 'collective_worker.js');

async function runGroup(
  np: number,
  scenario: string,
  args: object,
  transport: 'ipc' | 'tcp' = 'ipc',
  extraEnv?: Record<string, string>,
): Promise<RankOutcome[]> {
  const g = await spawnGroup({ np, script: worker, args: [scenario, JSON.stringify(args)], transport, extraEnv });
  return g.done;
}

function assertAllAgree(out: RankOutcome[]): void {
  for (const o of out) assert.equal(o.code, 0, `rank ${o.rank} failed: ${o.error?.message ?? o.stderr}`);
  const first = out[0].result.reduced as { size: number; op: string; sha: string; ok: boolean; worstRelErr: number }[];
  for (const o of out) {
    const mine = o.result.reduced as typeof first;
    assert.equal(mine.length, first.length);
    mine.forEach((r, k) => {
      assert.ok(
        r.ok,
        `rank ${o.rank}: ${r.op} of ${r.size} floats is off the float64 sum (worst relative error ${r.worstRelErr})`,
      );
      assert.equal(r.sha, first[k].sha, `rank ${o.rank}: ${r.op} of ${r.size} floats differs from rank 0's bytes`);
    });
    assert.ok(o.result.broadcastOk, `rank ${o.rank}: broadcast did not deliver the root's bytes`);
    assert.ok(o.result.gatherOk, `rank ${o.rank}: allGather returned wrong values`);
  }
}

test('world size 1 opens no sockets and every collective is the identity', async () => {
  const before = process.getActiveResourcesInfo().length;
  const pg = await createProcessGroup(readWorkerEnv({}));
  const buf = new Float32Array([1.5, -2, 3]);
  await pg.allReduce(buf, 'mean');
  await pg.broadcast(buf);
  await pg.barrier();
  assert.deepEqual(Array.from(buf), [1.5, -2, 3]);
  assert.deepEqual(await pg.allGather([7, 8]), [[7, 8]]);
  assert.equal(process.getActiveResourcesInfo().length, before);
  await pg.close();
});

test('world size 1: allReduce returns its own control bits; out-of-range bits are refused', async () => {
  const pg = await createProcessGroup(readWorkerEnv({}));
  assert.equal(await pg.allReduce(new Float32Array([1, 2]), 'mean', 5), 5);
  assert.equal(await pg.allReduce(new Float32Array(0), 'sum', 1), 1);
  assert.equal(await pg.allReduce(new Float32Array(0), 'sum'), 0);
  await assert.rejects(pg.allReduce(new Float32Array(1), 'sum', 256), /control must be an integer 0\.\.255/);
  await pg.close();
});

/**
 * A stop request as the training loop sends it: control bits set on some ranks, the OR on every rank after the
 * same call, for empty, tiny (segments without elements) and multi-chunk buffers; the values are those of the
 * same call without bits, byte for byte.
 */
async function assertControlWord(np: number, bits: number[], extra: object = {}, transport: 'ipc' | 'tcp' = 'ipc') {
  const sizes = [0, 1, np - 1, 1001, 12345];
  const out = await runGroup(np, 'control', { sizes, bits, chunkBytes: 4096, ...extra }, transport);
  const expected = bits.reduce((a, b) => a | b, 0);
  for (const o of out) {
    assert.equal(o.code, 0, `rank ${o.rank} failed: ${o.error?.message ?? o.stderr}`);
    const rows = o.result.rows as {
      size: number;
      plainControl: number;
      control: number;
      after: number;
      sameValues: boolean;
      sha: string;
    }[];
    assert.equal(rows.length, sizes.length);
    rows.forEach((r, k) => {
      assert.equal(r.control, expected, `rank ${o.rank}, ${r.size} floats: control word`);
      assert.equal(r.plainControl, 0, `rank ${o.rank}, ${r.size} floats: control word of a call without bits`);
      assert.equal(r.after, 0, `rank ${o.rank}, ${r.size} floats: control word of the next call`);
      assert.ok(r.sameValues, `rank ${o.rank}, ${r.size} floats: the control bits changed the values`);
      assert.equal(r.sha, (out[0].result.rows as typeof rows)[k].sha, `rank ${o.rank}: bytes differ from rank 0's`);
    });
  }
}

test('control bits (a stop request) set on one rank reach every rank in the same allReduce; values unchanged', async () => {
  await assertControlWord(2, [0, 1]); // the stop bit of the last rank
  await assertControlWord(3, [1, 0, 0]); // of the first
  await assertControlWord(4, [1, 2, 0, 128]); // bits of several ranks OR-ed
});

test('control bits through the socket, over tcp:// and with float16 on the wire', async () => {
  await assertControlWord(3, [0, 1, 0], { sharedMemory: false });
  await assertControlWord(3, [0, 0, 1], {}, 'tcp');
  await assertControlWord(3, [0, 1, 4], { wireDtype: 'float16' });
});

test('reduceScatter then allGatherInPlace give the bytes of allReduce; each rank owns one segment, all covered', async () => {
  for (const [np, extra, transport] of [
    [2, {}, 'ipc'],
    [3, { sharedMemory: false }, 'ipc'],
    [3, {}, 'tcp'],
    [3, { wireDtype: 'float16' }, 'ipc'],
  ] as const) {
    const sizes = [0, 1, np - 1, 1001, 12345];
    const bits = [1, 0, 2];
    const out = await runGroup(np, 'halves', { sizes, bits, chunkBytes: 4096, ...extra }, transport);
    const what = `${np} ranks ${transport} ${JSON.stringify(extra)}`;
    for (const o of out) assert.equal(o.code, 0, `${what}: rank ${o.rank} failed: ${o.error?.message ?? o.stderr}`);
    sizes.forEach((size, k) => {
      const rows = out.map((o) => o.result.rows[k]);
      assert.equal(
        rows.reduce((a, r) => a + r.owned, 0),
        size,
        `${what}, ${size} floats: the owned segments do not cover the buffer`,
      );
      for (const [rank, r] of rows.entries()) {
        assert.ok(r.ownedOk, `${what}, rank ${rank}, ${size} floats: the owned segment is not reduced`);
        assert.ok(r.sameBytes, `${what}, rank ${rank}, ${size} floats: the two halves differ from allReduce`);
        assert.equal(
          r.control,
          bits.slice(0, np).reduce((a, b) => a | b, 0),
          `${what}, rank ${rank}: control`,
        );
      }
    });
  }
});

/** the N-rank exact runs, kept for the tcp and float16 comparisons below (each group costs N node start-ups) */
const exactRuns = new Map<number, RankOutcome[]>();
const exactArgs = (np: number) => ({
  sizes: [...new Set([0, 1, np - 1, np + 1, 1001, 12345])],
  ops: ['sum', 'mean'],
  chunkBytes: 4096,
});

for (let np = 2; np <= 8; np++) {
  test(`N=${np}: sizes 0, 1, below N, odd and multi-chunk; sum and mean; broadcast, allGather, barrier`, async () => {
    // 4 KiB chunks so that 12345 floats take several chunks per segment, exercising the pipeline
    const out = await runGroup(np, 'exact', exactArgs(np));
    assertAllAgree(out);
    exactRuns.set(np, out);
  });
}

test('N=1 through the worker path (spawned with the launcher env) gives the input back', async () => {
  const out = await runGroup(1, 'exact', { sizes: [0, 1, 5], ops: ['sum', 'mean'] });
  assertAllAgree(out);
});

test('17.6M floats (HarDNet68 gradients), N=2, exact and byte-identical', async () => {
  assertAllAgree(await runGroup(2, 'exact', { sizes: [17_600_000], broadcastSize: 17_600_000 }));
});

test('tcp:// transport (CURVE) gives the same bytes as ipc://', async () => {
  const tcp = await runGroup(3, 'exact', exactArgs(3), 'tcp');
  assertAllAgree(tcp);
  const ipc = exactRuns.get(3) ?? (await runGroup(3, 'exact', exactArgs(3), 'ipc'));
  assertAllAgree(ipc);
  assert.deepEqual(tcp[0].result.reduced, ipc[0].result.reduced);
});

test('ipc:// payloads through mapped shared memory, pwrite/pread or the socket give the same bytes; no file is left', async () => {
  assert.ok(
    nativeShm(),
    'the prebuilt mmap module (native/shm/prebuilt/linux-x64.node) loads on this linux-x64 machine',
  );
  const viaShm = exactRuns.get(3) ?? (await runGroup(3, 'exact', exactArgs(3), 'ipc'));
  assertAllAgree(viaShm);
  for (const o of viaShm) assert.match(o.result.description, /via \/dev\/shm \(mapped\)/);
  const viaFiles = await runGroup(3, 'exact', exactArgs(3), 'ipc', { HARDNET_SHM_MMAP: '0' });
  assertAllAgree(viaFiles);
  for (const o of viaFiles) assert.match(o.result.description, /via \/dev\/shm \(pwrite\/pread\)/);
  assert.deepEqual(viaFiles[0].result.reduced, viaShm[0].result.reduced);
  const viaSocket = await runGroup(3, 'exact', { ...exactArgs(3), sharedMemory: false }, 'ipc');
  assertAllAgree(viaSocket);
  assert.deepEqual(viaSocket[0].result.reduced, viaShm[0].result.reduced);
  assert.equal(viaSocket[0].result.allReducePayloadBytes, viaShm[0].result.allReducePayloadBytes);
  for (const o of viaShm) assert.deepEqual(o.result.shmLeft, [], `rank ${o.rank}: files left in /dev/shm`);
  // one rank sending through its socket while its neighbours use shared memory: every receiver follows the flag
  const mixed = await runGroup(3, 'exact', { ...exactArgs(3), noShmRank: 1 }, 'ipc');
  assertAllAgree(mixed);
  assert.deepEqual(mixed[0].result.reduced, viaShm[0].result.reduced);
});

test("a symlink planted where the job's /dev/shm directory goes is refused, not followed", () => {
  const target = fs.mkdtempSync(path.join(os.tmpdir(), 'shm-target-'));
  const jobId = `symlink-test-${process.pid}`;
  const link = `/dev/shm/hardnet-${jobId}`;
  fs.symlinkSync(target, link);
  try {
    assert.match(shmUnavailable(jobId) ?? '', /not a directory \(a symlink\?\)/);
  } finally {
    fs.rmSync(link, { force: true });
    fs.rmSync(target, { recursive: true, force: true });
  }
  assert.equal(shmUnavailable(jobId), undefined, 'a fresh job directory is fine');
  fs.rmdirSync(`/dev/shm/hardnet-${jobId}`);
});

test('float16 on the wire: identical bytes on every rank, within half-precision rounding, half the payload', async () => {
  const out = await runGroup(3, 'exact', { ...exactArgs(3), wireDtype: 'float16' });
  assertAllAgree(out);
  const f32 = exactRuns.get(3) ?? (await runGroup(3, 'exact', exactArgs(3)));
  // the same reductions move half the payload bytes (broadcast and allGather stay float32/float64 in both runs)
  assert.equal(out[0].result.allReducePayloadBytes * 2, f32[0].result.allReducePayloadBytes);
});
