/**
 * No hangs and no strangers: a dead, stopped or silent peer becomes an error naming that rank and the
 * collective's sequence number; mismatched messages are errors; processes without the job secret cannot
 * connect or inject data; a taken address is an error naming it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as zmq from 'zeromq';
import { spawnGroup, type RankOutcome } from './helpers/spawn_group.js';
import { createProcessGroup, makeJobSecret } from '../worker/collectives/index.js';
import { encodeHeader, Op, WireDtype } from '../worker/collectives/wire.js';
import type { WorkerEnv } from '../shared/env.js';

const worker = path.join(path.dirname(fileURLToPath(import.meta.url)), 'helpers', 'collective_worker.js');

/** Run a fault scenario on 4 ranks with rank 2 as the victim; returns the survivors' outcomes. */
async function fault(mode: 'exit' | 'stop' | 'hang'): Promise<{ survivors: RankOutcome[]; seconds: number }> {
  const args = { mode, victim: 2, timeoutMs: 4000, warnAfterMs: 1000, heartbeatMs: 300 };
  const g = await spawnGroup({ np: 4, script: worker, args: ['fault', JSON.stringify(args)] });
  const t0 = Date.now();
  const exits = g.procs.map((p, rank) => new Promise<number>((resolve) => p.on('close', () => resolve(rank))));
  // the survivors must exit on their own; then the victim (stopped or sleeping) is killed
  const survivorsDone = Promise.all(exits.filter((_, r) => r !== 2));
  await survivorsDone;
  const seconds = (Date.now() - t0) / 1000;
  g.procs[2].kill('SIGKILL');
  const out = await g.done;
  return { survivors: out.filter((o) => o.rank !== 2), seconds };
}

for (const mode of ['exit', 'stop', 'hang'] as const) {
  test(`a peer that ${mode === 'exit' ? 'dies' : mode === 'stop' ? 'is stopped (SIGSTOP)' : 'never joins the collective'}: every other rank fails naming rank 2 and the sequence number`, async () => {
    const { survivors, seconds } = await fault(mode);
    for (const o of survivors) {
      assert.equal(o.code, 1, `rank ${o.rank} should fail, got ${JSON.stringify(o.result ?? o.error)}\n${o.stderr}`);
      assert.ok(o.error, `rank ${o.rank} printed no error`);
      assert.equal(o.error!.culprit, 2, `rank ${o.rank} blames rank ${o.error!.culprit}: ${o.error!.message}`);
      assert.match(o.error!.message, /rank 2/);
      // #1 is createProcessGroup's barrier, #2 the first allReduce, #3 the one the victim misses
      assert.equal(o.error!.seq, 3, o.error!.message);
      assert.match(o.error!.message, /allReduce #3/);
    }
    if (mode === 'hang') {
      // the silent rank is named in a warning before the limit, then in the timeout error
      assert.ok(
        survivors.some((o) => /still missing data from rank\(s\) [0-9, ]*2/.test(o.stderr)),
        survivors.map((o) => o.stderr).join('\n'),
      );
      assert.ok(survivors.some((o) => /timed out/.test(o.error!.message)));
    }
    assert.ok(seconds < 15, `survivors took ${seconds} s to exit`);
  });
}

test('messages that do not match (other sizes, other wire dtype) are errors, never summed', async () => {
  for (const args of [
    { size: 5000, sizeDelta: 3 },
    { size: 5000, rank1Dtype: 'float16' },
  ]) {
    const g = await spawnGroup({
      np: 3,
      script: worker,
      args: ['mismatch', JSON.stringify({ ...args, timeoutMs: 5000, heartbeatMs: 300 })],
    });
    const out = await g.done;
    assert.ok(
      out.every((o) => o.code === 1 && !o.result),
      JSON.stringify(out.map((o) => o.result ?? o.error)),
    );
    assert.ok(
      out.some((o) => /expected allReduce .* received allReduce/.test(o.error!.message)),
      out.map((o) => o.error!.message).join('\n'),
    );
  }
});

test('a worker without the secret pipe refuses to start a group', async () => {
  const g = await spawnGroup({ np: 2, script: worker, args: ['exact', '{"sizes":[1]}'], withSecret: false });
  const out = await g.done;
  for (const o of out) assert.match(o.error?.message ?? '', /no job secret/);
});

test('strangers without the secret can neither connect nor inject data; the job results are unaffected', async () => {
  for (const transport of ['ipc', 'tcp'] as const) {
    const g = await spawnGroup({
      np: 3,
      script: worker,
      args: ['repeat', JSON.stringify({ rounds: 25, size: 3001, pauseMs: 40 })],
      transport,
    });
    const target = g.endpoints[0];
    const forged = Buffer.from(new Float32Array(1000).fill(1e6).buffer);
    const strangers: zmq.Push[] = [];
    const attack = async () => {
      // no security at all, wrong CURVE server key, guessed PLAIN password: all carry well-formed headers
      const wrong = zmq.curveKeyPair();
      const mine = zmq.curveKeyPair();
      const variants = [
        new zmq.Push({ linger: 0, sendTimeout: 0 }),
        new zmq.Push({
          linger: 0,
          sendTimeout: 0,
          curveServerKey: wrong.publicKey,
          curvePublicKey: mine.publicKey,
          curveSecretKey: mine.secretKey,
        }),
        new zmq.Push({ linger: 0, sendTimeout: 0, plainUsername: g.jobId, plainPassword: 'guess' }),
      ];
      for (const s of variants) {
        s.connect(target);
        strangers.push(s);
      }
      for (let k = 0; k < 20; k++) {
        for (const s of variants) {
          const h = encodeHeader(Buffer.from(g.jobId), {
            op: Op.reduceScatter,
            dtype: WireDtype.float32,
            from: 2,
            seq: 2 + k,
            chunk: 0,
            bytes: forged.length,
          });
          // not awaited: a send to a peer that refuses the handshake may stay pending forever, exactly the point
          s.send([h, forged]).catch(() => {});
        }
        // raw bytes straight at the socket, as a port scanner or a confused client would
        await new Promise<void>((resolve) => {
          const addr = target.startsWith('ipc://')
            ? { path: target.slice(6) }
            : { host: '127.0.0.1', port: Number(target.split(':').pop()) };
          const c = net.connect(addr as net.NetConnectOpts, () => {
            c.end(Buffer.alloc(64, 0xff));
          });
          c.setTimeout(300, () => c.destroy()); // the server may keep a garbage connection half-open
          c.on('error', () => resolve());
          c.on('close', () => resolve());
        });
        await new Promise((r) => setTimeout(r, 30));
      }
    };
    const keepAlive = setInterval(() => {}, 1000); // zeromq promises hold no event-loop handle of their own
    const [out] = await Promise.all([g.done, attack()]).finally(() => clearInterval(keepAlive));
    for (const s of strangers) s.close();
    for (const o of out) {
      assert.equal(o.code, 0, `${transport} rank ${o.rank}: ${o.error?.message}\n${o.stderr}`);
      assert.ok(o.result.ok, `${transport} rank ${o.rank}: a result differs from the float64 sum`);
      assert.deepEqual(o.result.hashes, out[0].result.hashes);
      assert.equal(new Set(o.result.hashes).size, 1, 'every round reduces the same data, so every hash must be equal');
    }
    assert.match(out[0].stderr, /does not hold the job secret/);
  }
});

function env(rank: number, endpoints: string[], jobId: string): WorkerEnv {
  return {
    rank,
    localRank: rank,
    worldSize: endpoints.length,
    localWorldSize: endpoints.length,
    nodeRank: 0,
    endpoints,
    currentEndpoint: endpoints[rank],
    masterAddr: '127.0.0.1',
    masterPort: 0,
    selectedGpus: '',
    restartCount: 0,
    jobId,
    logDir: 'log',
  };
}

test('a taken address is an error naming it (tcp port in use, ipc path with a live listener)', async () => {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const secret = makeJobSecret('taken');
  await assert.rejects(
    createProcessGroup(env(0, [`tcp://127.0.0.1:${port}`, 'tcp://127.0.0.1:1'], 'taken'), { secret, timeoutMs: 2000 }),
    new RegExp(`cannot bind its endpoint tcp://127\\.0\\.0\\.1:${port}: the address is already in use`),
  );
  await new Promise((r) => server.close(r));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hardnet-taken-'));
  const sock = path.join(dir, 'rank0.sock');
  const ipcServer = net.createServer().listen(sock);
  await new Promise((r) => ipcServer.on('listening', r));
  try {
    // right after the failed tcp group: the ZAP handler it closed may still hold its inproc name (see zap.ts)
    await assert.rejects(
      createProcessGroup(env(0, [`ipc://${sock}`, `ipc://${dir}/rank1.sock`], 'taken'), { secret, timeoutMs: 2000 }),
      new RegExp(`endpoint ipc://${sock.replace(/[.]/g, '\\.')} is already in use`),
    );
  } finally {
    // a listener left open would keep this file's process alive after a failure
    await new Promise((r) => ipcServer.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
