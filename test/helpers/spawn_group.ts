/**
 * Start N real node processes exactly the way the launcher starts workers: the env contract from
 * formatWorkerEnv(), ipc:// endpoints in a per-job directory (or tcp:// on loopback), and the job secret written
 * as one JSON line to an inherited pipe on fd 3 (HARDNET_SECRET_FD=3), never on argv or in the environment.
 *
 * A worker reports by printing one line `RESULT <json>` (or `ERROR <json>`) on stdout.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { formatWorkerEnv, ipcEndpoints, ipcJobDir, type JobSecret, type WorkerEnv } from '../../shared/env.js';
import { makeJobSecret } from '../../worker/collectives/secret.js';
import { withCollectiveMallocTunables } from '../../shared/malloc_tunables.js';

export interface RankOutcome {
  rank: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  result?: any;
  error?: { message: string; culprit?: number; seq?: number };
  stdout: string;
  stderr: string;
}

export interface SpawnOptions {
  np: number;
  /** the worker script (a compiled .js path) and its arguments */
  script: string;
  args?: string[];
  transport?: 'ipc' | 'tcp';
  jobId?: string;
  /** false: start the workers without a secret pipe */
  withSecret?: boolean;
  extraEnv?: Record<string, string>;
}

export interface SpawnedGroup {
  jobId: string;
  endpoints: string[];
  secret: JobSecret;
  procs: ChildProcess[];
  /** resolves when every worker has exited */
  done: Promise<RankOutcome[]>;
}

/**
 * Free loopback ports for a test: the OS picks them, then they are released for the workers to bind. That
 * window is a race the launcher avoids; in a test on one machine it is harmless.
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<net.Server>((resolve) => {
          const s = net.createServer();
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export async function spawnGroup(o: SpawnOptions): Promise<SpawnedGroup> {
  const jobId = o.jobId ?? `t${randomBytes(4).toString('hex')}`;
  const endpoints =
    o.transport === 'tcp' ? (await freePorts(o.np)).map((p) => `tcp://127.0.0.1:${p}`) : ipcEndpoints(jobId, o.np);
  const secret = makeJobSecret(jobId);
  const procs: ChildProcess[] = [];
  const outcomes: Promise<RankOutcome>[] = [];
  for (let rank = 0; rank < o.np; rank++) {
    const env: WorkerEnv = {
      rank,
      localRank: rank,
      worldSize: o.np,
      localWorldSize: o.np,
      nodeRank: 0,
      endpoints,
      currentEndpoint: endpoints[rank],
      masterAddr: '127.0.0.1',
      masterPort: 0,
      selectedGpus: '',
      restartCount: 0,
      jobId,
      logDir: 'log',
      secretFd: o.withSecret === false ? undefined : 3,
    };
    const child = spawn(process.execPath, [o.script, ...(o.args ?? [])], {
      // malloc tunables as the launcher sets them (see malloc_tunables.ts): received ZeroMQ buffers reuse pages
      env: {
        ...process.env,
        GLIBC_TUNABLES: withCollectiveMallocTunables(process.env.GLIBC_TUNABLES),
        ...formatWorkerEnv(env),
        ...o.extraEnv,
      },
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
    });
    if (o.withSecret !== false) {
      const pipe = child.stdio[3] as NodeJS.WritableStream;
      pipe.on('error', () => {
        /* the worker died before reading: its exit code tells */
      });
      pipe.end(JSON.stringify(secret) + '\n');
    }
    procs.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    outcomes.push(
      new Promise((resolve) => {
        child.on('close', (code, signal) => {
          const out: RankOutcome = { rank, code, signal, stdout, stderr };
          for (const line of stdout.split('\n')) {
            if (line.startsWith('RESULT ')) out.result = JSON.parse(line.slice(7));
            if (line.startsWith('ERROR ')) out.error = JSON.parse(line.slice(6));
          }
          resolve(out);
        });
      }),
    );
  }
  // the socket directory goes when its last rank has exited (a rank removes it only when it made it and it is empty)
  const ipcDir = o.transport === 'tcp' ? undefined : ipcJobDir(jobId);
  const done = Promise.all(outcomes).then((r) => {
    if (ipcDir) fs.rmSync(ipcDir, { recursive: true, force: true });
    return r;
  });
  return { jobId, endpoints, secret, procs, done };
}
