/**
 * Process groups for data-parallel training: `createProcessGroup(readWorkerEnv(), opts)`.
 * See process_group.ts for the algorithms, link.ts for sockets/timeouts, secret.ts for the launcher contract.
 */
import type { JobSecret, WorkerEnv } from '../../shared/env.js';
import { CollectiveError, RingLink, type LogFn, type SecurityMechanism } from './link.js';
import { RingGroup, SoloGroup, type ProcessGroup, type WireDtypeName } from './process_group.js';
import { readJobSecret, SecretError } from './secret.js';

export type { ProcessGroup, WireDtypeName } from './process_group.js';
export { CollectiveError, type SecurityMechanism } from './link.js';
export { makeJobSecret, readJobSecret, SecretError } from './secret.js';
export { COLLECTIVE_MALLOC_TUNABLES, withCollectiveMallocTunables } from '../../shared/malloc_tunables.js';
export type { RingTiming } from './process_group.js';

export interface ProcessGroupOptions {
  /** the job secret; read from env.secretFd when absent */
  secret?: JobSecret;
  /** every collective fails after this long (default 30 min, as torch.distributed) */
  timeoutMs?: number;
  /** a warning naming the missing ranks after this long (default 60 s) */
  warnAfterMs?: number;
  /** `allreduce_dtype`: float16 halves the bytes on the wire (results are rounded to half precision) */
  wireDtype?: WireDtypeName;
  /**
   * ring chunk size in bytes (float32 elements * 4), the same on every rank; default 4 MiB. Through mapped shared
   * memory each message costs a wake-up on both sides and no copy, so fewer, larger chunks win; through sockets
   * the chunk size hardly matters (`npm run bench:allreduce -- --chunk`, docs/bench_allreduce.md).
   */
  chunkBytes?: number;
  /** ZMTP heartbeat interval; a peer silent for 3 intervals (a stopped process) is treated as gone. Default 2 s */
  heartbeatMs?: number;
  /** how connections authenticate: curve (default) or plain (+ZAP) (see link.ts) */
  security?: SecurityMechanism;
  /**
   * allReduce payloads between ranks on one host go through /dev/shm (shm.ts). Default: on, unless the
   * environment sets HARDNET_SHM_DISABLE=1 (as NCCL_SHM_DISABLE does for NCCL).
   */
  sharedMemory?: boolean;
  log?: LogFn;
}

const defaultLog: LogFn = (level, msg) => {
  if (level !== 'info') process.stderr.write(`[collectives] ${level}: ${msg}\n`);
};

export async function createProcessGroup(env: WorkerEnv, opts: ProcessGroupOptions = {}): Promise<ProcessGroup> {
  if (env.worldSize === 1) return new SoloGroup();
  const log = opts.log ?? defaultLog;
  const timeoutMs = opts.timeoutMs ?? 30 * 60_000;
  const warnAfterMs = opts.warnAfterMs ?? 60_000;
  const wireDtype = opts.wireDtype ?? 'float32';
  if (opts.security !== undefined && opts.security !== 'curve' && opts.security !== 'plain')
    throw new RangeError(`security must be curve or plain, not ${JSON.stringify(opts.security)}`);
  if (wireDtype !== 'float32' && wireDtype !== 'float16')
    throw new RangeError(`allreduce_dtype must be float32 or float16, not ${JSON.stringify(wireDtype)}`);
  if (env.endpoints.length !== env.worldSize)
    throw new CollectiveError(
      `rank ${env.rank}: ${env.endpoints.length} endpoints for a world size of ${env.worldSize}`,
    );
  const chunkBytes = opts.chunkBytes ?? 4 << 20;
  let secret = opts.secret;
  if (secret === undefined) {
    if (env.secretFd === undefined) {
      throw new SecretError(
        `rank ${env.rank}: no job secret (HARDNET_SECRET_FD is not set): a group of ${env.worldSize} ranks needs the launcher's CURVE keys`,
      );
    }
    secret = await readJobSecret(env.secretFd);
  }
  if (secret.jobId !== env.jobId)
    throw new SecretError(
      `rank ${env.rank}: the job secret is for job ${JSON.stringify(secret.jobId)}, but this is job ${JSON.stringify(env.jobId)}`,
    );
  const link = await RingLink.open({
    rank: env.rank,
    worldSize: env.worldSize,
    endpoints: env.endpoints,
    jobId: env.jobId,
    secret,
    timeoutMs,
    warnAfterMs,
    heartbeatMs: opts.heartbeatMs ?? 2000,
    security: opts.security,
    sharedMemory: opts.sharedMemory ?? process.env.HARDNET_SHM_DISABLE !== '1',
    maxPayloadBytes: chunkBytes,
    log,
  });
  const group = new RingGroup(link, env, { timeoutMs, warnAfterMs, wireDtype, chunkBytes, log });
  // the ring is up once a barrier has gone round: every rank has bound, connected and authenticated
  try {
    await group.barrier();
  } catch (err) {
    await group.close();
    throw err;
  }
  return group;
}
