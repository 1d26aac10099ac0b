/**
 * The ring's door, with real ZeroMQ sockets: in CURVE mode only the job's client key gets a message through
 * (a ZAP handler checks it); an abort is acted on only when it comes from the ring predecessor in the current
 * collective; a message larger than the largest chunk never reaches the receiver; warnings about rejected peers
 * are rate-limited and counted.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as zmq from 'zeromq';
import type { WorkerEnv } from '../shared/env.js';
import { createProcessGroup, makeJobSecret, type ProcessGroup } from '../worker/collectives/index.js';
import { encodeHeader, Op, WireDtype } from '../worker/collectives/wire.js';
import { registerZapDomain, unregisterZapDomain } from '../worker/collectives/zap.js';
import type { JobSecret } from '../shared/env.js';
import { freePorts } from './helpers/spawn_group.js';

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

interface Ring {
  groups: ProcessGroup[];
  endpoints: string[];
  secret: JobSecret;
  logs: string[][];
}

/**
 * Two ranks of one tcp job in this process (two CURVE rings' worth of real sockets on loopback). The ports are
 * probed free and then bound, and in between an outgoing connection (the attackers' reconnects) can take one as its
 * ephemeral port: on EADDRINUSE the ranks that did open are closed and the ring is opened on fresh ports.
 */
async function openRing(jobId: string, chunkBytes = 1 << 20): Promise<Ring> {
  for (let attempt = 1; ; attempt++) {
    const endpoints = (await freePorts(2)).map((p) => `tcp://127.0.0.1:${p}`);
    const secret = makeJobSecret(jobId);
    const logs: string[][] = [[], []];
    const opened = await Promise.allSettled(
      [0, 1].map((r) =>
        createProcessGroup(env(r, endpoints, jobId), {
          secret,
          timeoutMs: 8000,
          heartbeatMs: 500,
          chunkBytes,
          log: (level, m) => {
            if (level !== 'info') logs[r].push(m);
          },
        }),
      ),
    );
    const failures = opened.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason);
    if (failures.length === 0) {
      const groups = opened.map(
        (o) => (o as PromiseFulfilledResult<Awaited<ReturnType<typeof createProcessGroup>>>).value,
      );
      return { groups, endpoints, secret, logs };
    }
    for (const o of opened) if (o.status === 'fulfilled') await o.value.close();
    // the rank whose port was taken fails at once; the other then times out waiting for it
    const taken = failures.some((e) => (e as NodeJS.ErrnoException)?.code === 'EADDRINUSE');
    if (!taken || attempt >= 5) throw failures[0];
  }
}

async function allReduceChecked(ring: Ring, n: number): Promise<void> {
  const bufs = ring.groups.map((g) => new Float32Array(n).fill(g.rank + 1));
  await Promise.all(ring.groups.map((g, i) => g.allReduce(bufs[i], 'sum')));
  for (const b of bufs)
    assert.ok(
      b.every((v) => v === 3),
      'sum of 1 and 2 on every element',
    );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Open a ring, run `body` with it and a list for the attacking sockets it makes, then close both, whatever happened.
 * The interval keeps the event loop alive: zeromq promises hold no handle of their own.
 */
async function withRing(
  jobId: string,
  chunkBytes: number,
  body: (ring: Ring, attackers: zmq.Push[]) => Promise<void>,
): Promise<Ring> {
  const ring = await within(60_000, `${jobId}: opening the ring`, openRing(jobId, chunkBytes));
  const keepAlive = setInterval(() => {}, 1000);
  const attackers: zmq.Push[] = [];
  try {
    await within(60_000, `${jobId}: the test's body`, body(ring, attackers));
  } finally {
    clearInterval(keepAlive);
    for (const s of attackers) s.close();
    await within(30_000, `${jobId}: closing the ring`, Promise.all(ring.groups.map((g) => g.close())));
  }
  return ring;
}

/**
 * `p`, or an error naming the stage after `ms`: one run in ~34 of this file once hung until the test runner's limit
 * without saying where; a stage that hangs again says which one it was.
 */
async function within<T>(ms: number, stage: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${stage} did not finish in ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A socket holding the job's client key (every rank has it), connected to rank 0 but not its predecessor. */
function memberPush(ring: Ring, attackers: zmq.Push[]): zmq.Push {
  const c = ring.secret.curve;
  const s = new zmq.Push({
    linger: 0,
    sendTimeout: 1000,
    curveServerKey: c.serverPublicKey,
    curvePublicKey: c.clientPublicKey,
    curveSecretKey: c.clientSecretKey,
  });
  s.connect(ring.endpoints[0]);
  attackers.push(s);
  return s;
}

function abortFrames(jobId: string, from: number, seq: number): [Buffer, Buffer] {
  const payload = Buffer.from(JSON.stringify({ culprit: 1, origin: from, reason: 'forged' }));
  return [
    encodeHeader(Buffer.from(jobId), {
      op: Op.abort,
      dtype: WireDtype.bytes,
      from,
      seq,
      chunk: 0,
      bytes: payload.length,
    }),
    payload,
  ];
}

test('CURVE: a client with the server key but a fresh client key gets nothing through, not even an abort', async () => {
  const jobId = 'door-fresh';
  await withRing(jobId, 1 << 20, async (ring, attackers) => {
    const mine = zmq.curveKeyPair();
    // what another local user could do with the server public key alone (from a readable secret file)
    const stranger = new zmq.Push({
      linger: 0,
      sendTimeout: 0,
      curveServerKey: ring.secret.curve.serverPublicKey,
      curvePublicKey: mine.publicKey,
      curveSecretKey: mine.secretKey,
    });
    attackers.push(stranger);
    stranger.connect(ring.endpoints[0]);
    // rank 0's predecessor is rank 1; the next collective is #2 (#1 was the opening barrier)
    for (let seq = 2; seq < 6; seq++) stranger.send(abortFrames(jobId, 1, seq)).catch(() => {});
    await sleep(800);
    for (let k = 0; k < 3; k++) await allReduceChecked(ring, 1000);
    assert.ok(
      ring.logs[0].some((m) => /rejected .*does not hold the job secret/.test(m)),
      ring.logs[0].join('\n'),
    );
  });
});

test('an abort that is not from the predecessor, or not of the current collective, is ignored', async () => {
  const jobId = 'door-abort';
  await withRing(jobId, 1 << 20, async (ring, attackers) => {
    const member = memberPush(ring, attackers);
    await allReduceChecked(ring, 1000); // #2; the next is #3
    await member.send(abortFrames(jobId, 0, 3)); // "from" rank 0 itself: only rank 1 sends to rank 0
    await member.send(abortFrames(jobId, 1, 1)); // a replay of collective #1 (the barrier, long done)
    await member.send(abortFrames(jobId, 1, 77)); // a collective that has not happened
    await sleep(500);
    await allReduceChecked(ring, 1000);
    await allReduceChecked(ring, 1000);
    assert.ok(
      ring.logs[0].some((m) => /ignored an abort/.test(m)),
      ring.logs[0].join('\n'),
    );
  });
});

test('a message larger than the largest chunk plus its header is dropped at the socket', async () => {
  const jobId = 'door-size';
  await withRing(jobId, 64 * 1024, async (ring, attackers) => {
    const big = Buffer.alloc(4 << 20);
    await memberPush(ring, attackers).send([
      encodeHeader(Buffer.from(jobId), {
        op: Op.reduceScatter,
        dtype: WireDtype.float32,
        from: 1,
        seq: 2,
        chunk: 0,
        bytes: big.length,
      }),
      big,
    ]);
    await sleep(800);
    // the ring's own chunks (64 KiB) still pass; the 4 MiB message never reached rank 0
    await allReduceChecked(ring, 100_000);
  });
});

test('300 clients with wrong keys give a bounded number of warning lines, with a count', async () => {
  const jobId = 'door-flood';
  const ring = await withRing(jobId, 1 << 20, async (ring, attackers) => {
    for (let i = 0; i < 300; i++) {
      const k = zmq.curveKeyPair();
      const wrongServer = zmq.curveKeyPair();
      const s = new zmq.Push({
        linger: 0,
        sendTimeout: 0,
        reconnectInterval: 100,
        curveServerKey: i % 2 ? ring.secret.curve.serverPublicKey : wrongServer.publicKey,
        curvePublicKey: k.publicKey,
        curveSecretKey: k.secretKey,
      });
      attackers.push(s);
      s.connect(ring.endpoints[0]);
      s.send(abortFrames(jobId, 1, 2)).catch(() => {});
    }
    await sleep(3000);
    await allReduceChecked(ring, 1000);
  });
  const warned = ring.logs[0].filter((m) => /rejected/.test(m));
  assert.ok(
    warned.length >= 1 && warned.length <= 5,
    `${warned.length} warning lines:\n${warned.slice(0, 10).join('\n')}`,
  );
  const counted = warned
    .map((m) => /(\d+) (?:more )?(?:connection|rejected)/.exec(m))
    .filter(Boolean)
    .map((m) => Number(m![1]));
  assert.ok(counted.reduce((a, b) => a + b, 0) >= 100, `the warnings count the rejected peers: ${warned.join('\n')}`);
});

test('the ZAP handler closed with its last domain starts again at once, 100 times (libzmq releases its name later)', async () => {
  // each unregister closes the handler (no other domain is registered between this file's tests) and the next
  // register binds the same inproc name right away, as a group created just after a failed one does
  const domain = `zap-restart-${process.pid}`;
  for (let i = 0; i < 100; i++) {
    await registerZapDomain(domain, { mechanism: 'PLAIN', username: 'u', password: 'p' });
    unregisterZapDomain(domain);
  }
});
