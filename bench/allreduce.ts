/**
 * All-reduce benchmark, nccl-tests style:
 *   npm run bench:allreduce -- --np 2,4 --size 1MB,14MB,70.4MB [--transport ipc|tcp] [--dtype float32|float16]
 *                              [--reps 11] [--warmup 3] [--chunk 4MiB] [--json]
 * Over ipc the workers are started by the launcher itself (`launch --nproc_per_node N run -- node
 * collective_worker.js bench ...`, rank 0's RESULT line read from its workerlog.0); over tcp by
 * test/helpers/spawn_group.ts, which gives them the same env contract and secret pipe on loopback ports;
 * times SUM over float32 buffers: per repetition the max over ranks, reported as the median over repetitions.
 * algbw = S / t, busbw = algbw * 2(N-1)/N.
 */
import { Command } from 'commander';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { spawnGroup } from '../test/helpers/spawn_group.js';
import { addChunk } from '../worker/collectives/sum.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const workerScript = path.join(here, '..', 'test', 'helpers', 'collective_worker.js');
const launchCli = path.join(here, '..', 'launcher', 'cli.js');

/** Rank 0's result of one benchmark job run by the launcher (one host, ipc). */
function viaLauncher(np: number, args: string[]): { rows: unknown[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-allreduce-'));
  try {
    const r = spawnSync(
      process.execPath,
      [
        launchCli,
        '--nproc_per_node',
        String(np),
        '--log_dir',
        dir,
        'run',
        '--',
        process.execPath,
        workerScript,
        ...args,
      ],
      { encoding: 'utf8' },
    );
    if (r.status !== 0)
      throw new Error(`launch --nproc_per_node ${np} failed (exit ${r.status}):\n${r.stderr.slice(-3000)}`);
    const line = fs
      .readFileSync(path.join(dir, 'workerlog.0'), 'utf8')
      .split('\n')
      .find((l) => l.startsWith('RESULT '));
    if (!line) throw new Error(`rank 0 printed no RESULT line (${path.join(dir, 'workerlog.0')})`);
    return JSON.parse(line.slice('RESULT '.length));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** "70.4MB" -> 70_400_000 bytes (decimal units as nccl-tests and gloo_allreduce.py), "1MiB" -> 1_048_576 */
export function parseBytes(s: string): number {
  const m = /^([0-9.]+)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$/i.exec(s.trim());
  if (!m) throw new Error(`--size: cannot read ${JSON.stringify(s)} as a byte count (e.g. 1MB, 70.4MB, 4MiB)`);
  const unit = (m[2] ?? 'B').toLowerCase();
  const mult: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };
  return Math.round((Number(m[1]) * mult[unit]) / 4) * 4;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const k = s.length >> 1;
  return s.length % 2 ? s[k] : (s[k - 1] + s[k]) / 2;
};

async function main(): Promise<void> {
  const cli = new Command('bench:allreduce')
    .option('--np <list>', 'world sizes, comma separated', '2,4')
    .option('--size <list>', 'buffer sizes, comma separated', '1MB,14MB,70.4MB')
    .option('--transport <t>', 'ipc or tcp', 'ipc')
    .option('--dtype <d>', 'wire dtype: float32 or float16', 'float32')
    .option('--reps <n>', 'timed repetitions', '11')
    .option('--warmup <n>', 'untimed repetitions first', '3')
    .option('--chunk <bytes>', 'ring chunk size', '4MiB')
    .option('--security <m>', 'curve (default) or plain')
    .option('--shm <on|off>', 'on ipc, float32 payloads through /dev/shm (default) or through the ZeroMQ socket', 'on')
    .option(
      '--profile',
      'also print, per rank and op (mean over ranks): CPU ms of all threads (user/sys), minor page faults, and the main thread split: waiting to receive, summing, copying out, queueing sends',
    )
    .option(
      '--kernels',
      "instead: the ring's sum on its own, JS loop vs WebAssembly SIMD, over 17.6M floats in 1 MiB chunks",
    )
    .option('--json', 'one JSON object per line')
    .parse();
  const o = cli.opts();
  if (o.kernels) return kernels(Number(o.reps));
  if (o.transport !== 'ipc' && o.transport !== 'tcp')
    throw new Error(`--transport must be ipc or tcp, not ${o.transport}`);
  if (o.dtype !== 'float32' && o.dtype !== 'float16')
    throw new Error(`--dtype must be float32 or float16, not ${o.dtype}`);
  if (o.shm !== 'on' && o.shm !== 'off') throw new Error(`--shm must be on or off, not ${o.shm}`);
  const nps = String(o.np)
    .split(',')
    .map((s) => {
      const n = Number(s);
      if (!Number.isInteger(n) || n < 1) throw new Error(`--np: ${s} is not a positive integer`);
      return n;
    });
  const sizes = String(o.size).split(',').map(parseBytes);
  if (!o.json) {
    const payloads =
      o.transport === 'ipc' && o.dtype === 'float32' && o.shm !== 'off'
        ? 'payloads via /dev/shm'
        : 'payloads in the messages';
    console.log(
      `# all-reduce SUM float32 (wire ${o.dtype}), ${o.transport}, security ${o.security ?? 'curve'}, ${payloads}, chunk ${o.chunk}, median of ${o.reps} (max over ranks each)`,
    );
    console.log('#     np         bytes  time_ms  algbw_GBps  busbw_GBps  ok');
  }
  for (const np of nps) {
    const args = [
      'bench',
      JSON.stringify({
        sizes,
        reps: Number(o.reps),
        warmup: Number(o.warmup),
        wireDtype: o.dtype,
        chunkBytes: parseBytes(o.chunk),
        security: o.security,
        sharedMemory: o.shm !== 'off',
      }),
    ];
    let result: { rows: unknown[] };
    if (o.transport === 'ipc' && np > 1) result = viaLauncher(np, args);
    else {
      const out = await (await spawnGroup({ np, script: workerScript, transport: o.transport, args })).done;
      const bad = out.find((r) => r.code !== 0);
      if (bad)
        throw new Error(
          `rank ${bad.rank} failed (exit ${bad.code ?? bad.signal}): ${bad.error?.message ?? bad.stderr.slice(-2000)}`,
        );
      result = out[0].result;
    }
    for (const row of result.rows as {
      bytes: number;
      times_ms: number[];
      ok: boolean;
      profile: Record<string, number>;
    }[]) {
      const t = median(row.times_ms);
      const algbw = row.bytes / (t / 1e3) / 1e9;
      const busbw = (algbw * 2 * (np - 1)) / np;
      if (o.json) {
        console.log(
          JSON.stringify({
            np,
            bytes: row.bytes,
            transport: o.transport,
            dtype: o.dtype,
            time_ms: +t.toFixed(3),
            algbw_GBps: +algbw.toFixed(3),
            busbw_GBps: +busbw.toFixed(3),
            ok: row.ok,
            ...(o.profile ? { profile: row.profile } : {}),
            times_ms: row.times_ms.map((x) => +x.toFixed(3)),
          }),
        );
      } else {
        console.log(
          `${String(np).padStart(8)}  ${String(row.bytes).padStart(12)}  ${t.toFixed(2).padStart(7)}  ${algbw.toFixed(3).padStart(10)}  ${busbw.toFixed(3).padStart(10)}  ${row.ok ? 'yes' : 'NO'}`,
        );
        if (o.profile) {
          const p = row.profile;
          console.log(
            `#   per rank: cpu ${p.cpuUserMs.toFixed(1)} user + ${p.cpuSysMs.toFixed(1)} sys ms, ${Math.round(p.minorFaults)} page faults, ${Math.round(p.messages)} messages; main thread: recv wait ${p.recvWaitMs.toFixed(1)}, sum ${p.sumMs.toFixed(1)}, copy ${p.copyMs.toFixed(1)}, send ${p.sendMs.toFixed(1)} ms`,
          );
        }
      }
    }
  }
}

/** The unrolled JS loop the ring used before the SIMD kernel, for comparison. */
function jsAddInto(acc: Float32Array, src: Float32Array): void {
  const n = acc.length;
  let i = 0;
  for (const end = n - (n & 3); i < end; i += 4) {
    acc[i] += src[i];
    acc[i + 1] += src[i + 1];
    acc[i + 2] += src[i + 2];
    acc[i + 3] += src[i + 3];
  }
  for (; i < n; i++) acc[i] += src[i];
}

/**
 * Sum 17.6M floats the way a ring step does: a 1 MiB received chunk (the accumulator) plus the matching part of
 * the caller's 70 MB array, chunk after chunk, interleaving the two kernels rep by rep so both see the same load.
 */
function kernels(reps: number): void {
  const n = 17_600_000;
  const chunk = 1 << 18;
  const mine = new Float32Array(n).fill(0.5);
  const rx = Array.from({ length: 8 }, () => Buffer.alloc(chunk * 4 + 1).subarray(1)); // odd offset, as zeromq may give
  const acc = rx.map((_b) => new Float32Array(chunk)); // the JS loop needs an aligned view: its own buffers
  const times: Record<string, number[]> = { js: [], simd: [] };
  for (let rep = 0; rep < reps + 1; rep++) {
    for (const name of ['js', 'simd'] as const) {
      const t0 = performance.now();
      for (let c = 0, k = 0; c < n; c += chunk, k++) {
        const part = mine.subarray(c, Math.min(n, c + chunk));
        if (name === 'js') jsAddInto(acc[k & 7].subarray(0, part.length), part);
        else addChunk(rx[k & 7].subarray(0, part.length * 4), part);
      }
      if (rep > 0) times[name].push(performance.now() - t0);
    }
  }
  for (const [name, t] of Object.entries(times)) {
    const m = median(t);
    console.log(
      `${name.padEnd(5)} ${m.toFixed(2).padStart(7)} ms for ${n} floats = ${((m * 1e6) / n).toFixed(3)} ns/element (median of ${reps})`,
    );
  }
}

main().catch((err) => {
  console.error(`bench:allreduce: ${(err as Error).message}`);
  process.exit(1);
});
