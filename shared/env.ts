/**
 * The environment contract between the launcher and its workers.
 *
 * The launcher sets these variables on every worker it spawns; the worker (and any program run with
 * `launch run -- ...`) reads them with `readWorkerEnv()`. Both paddle's and torchrun's names are set so that
 * scripts written for either keep working. Secrets are NOT passed here: environment variables show up in
 * `ps e` and /proc/<pid>/environ, so the per-job secret travels over an inherited pipe (see SECRET_FD).
 */
import { UsageError } from './errors.js';

export interface WorkerEnv {
  /** global rank, 0..worldSize-1 */
  rank: number;
  /** rank among the workers of this node */
  localRank: number;
  worldSize: number;
  localWorldSize: number;
  /** node index in --ips (or from Slurm) */
  nodeRank: number;
  /** every rank's endpoint, in rank order: "ipc:///tmp/..." on one host, "tcp://ip:port" across hosts */
  endpoints: string[];
  /** this rank's endpoint (endpoints[rank]) */
  currentEndpoint: string;
  masterAddr: string;
  masterPort: number;
  /** GPU ids visible to this worker ("" for a CPU worker) */
  selectedGpus: string;
  /** how many times the launcher has restarted the job (0 on the first attempt) */
  restartCount: number;
  /** unique id of this launch; part of every collective message and of ipc paths */
  jobId: string;
  /** directory where this worker's log lives (the launcher's --log_dir) */
  logDir: string;
  /** file descriptor from which the worker reads the job secret (JSON, one line), or undefined */
  secretFd?: number;
}

/** Names of the variables; one place so the launcher and the worker cannot drift apart. */
export const ENV = {
  PADDLE_TRAINER_ID: 'PADDLE_TRAINER_ID',
  PADDLE_TRAINERS_NUM: 'PADDLE_TRAINERS_NUM',
  PADDLE_CURRENT_ENDPOINT: 'PADDLE_CURRENT_ENDPOINT',
  PADDLE_TRAINER_ENDPOINTS: 'PADDLE_TRAINER_ENDPOINTS',
  FLAGS_selected_gpus: 'FLAGS_selected_gpus',
  RANK: 'RANK',
  LOCAL_RANK: 'LOCAL_RANK',
  WORLD_SIZE: 'WORLD_SIZE',
  LOCAL_WORLD_SIZE: 'LOCAL_WORLD_SIZE',
  GROUP_RANK: 'GROUP_RANK',
  MASTER_ADDR: 'MASTER_ADDR',
  MASTER_PORT: 'MASTER_PORT',
  /** torchrun's name for the restart counter */
  TORCHELASTIC_RESTART_COUNT: 'TORCHELASTIC_RESTART_COUNT',
  HARDNET_RESTART_COUNT: 'HARDNET_RESTART_COUNT',
  HARDNET_JOB_ID: 'HARDNET_JOB_ID',
  HARDNET_LOG_DIR: 'HARDNET_LOG_DIR',
  HARDNET_SECRET_FD: 'HARDNET_SECRET_FD',
  /** the job's directory on /dev/shm, made by the launcher (mode 0700, a random part in its name) */
  HARDNET_SHM_DIR: 'HARDNET_SHM_DIR',
} as const;

/** The job secret as the launcher writes it to the worker's SECRET_FD pipe (one JSON line). */
export interface JobSecret {
  jobId: string;
  /** ZeroMQ CURVE key material, z85-encoded */
  curve: { serverPublicKey: string; serverSecretKey: string; clientPublicKey: string; clientSecretKey: string };
}

/** The launcher-worker environment contract broken: the process was not started by the launcher as agreed. */
export class EnvError extends UsageError {}

function intVar(env: NodeJS.ProcessEnv, name: string, fallback?: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    if (fallback !== undefined) return fallback;
    throw new EnvError(`environment variable ${name} is not set (is this process running under 'launch'?)`);
  }
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 0)
    throw new EnvError(`environment variable ${name}=${JSON.stringify(raw)} is not a non-negative integer`);
  return v;
}

/** Render the variables for one worker. */
export function formatWorkerEnv(w: WorkerEnv): Record<string, string> {
  const out: Record<string, string> = {
    [ENV.PADDLE_TRAINER_ID]: String(w.rank),
    [ENV.PADDLE_TRAINERS_NUM]: String(w.worldSize),
    [ENV.PADDLE_CURRENT_ENDPOINT]: w.currentEndpoint,
    [ENV.PADDLE_TRAINER_ENDPOINTS]: w.endpoints.join(','),
    [ENV.FLAGS_selected_gpus]: w.selectedGpus,
    [ENV.RANK]: String(w.rank),
    [ENV.LOCAL_RANK]: String(w.localRank),
    [ENV.WORLD_SIZE]: String(w.worldSize),
    [ENV.LOCAL_WORLD_SIZE]: String(w.localWorldSize),
    [ENV.GROUP_RANK]: String(w.nodeRank),
    [ENV.MASTER_ADDR]: w.masterAddr,
    [ENV.MASTER_PORT]: String(w.masterPort),
    [ENV.TORCHELASTIC_RESTART_COUNT]: String(w.restartCount),
    [ENV.HARDNET_RESTART_COUNT]: String(w.restartCount),
    [ENV.HARDNET_JOB_ID]: w.jobId,
    [ENV.HARDNET_LOG_DIR]: w.logDir,
  };
  if (w.secretFd !== undefined) out[ENV.HARDNET_SECRET_FD] = String(w.secretFd);
  return out;
}

/**
 * Read the contract from the environment. A process started without the launcher is a single worker
 * (rank 0 of 1, no endpoints), so `node dist/worker/main.js train` works on its own, as paddle's does.
 */
export function readWorkerEnv(env: NodeJS.ProcessEnv = process.env): WorkerEnv {
  const worldSize = intVar(env, ENV.PADDLE_TRAINERS_NUM, intVar(env, ENV.WORLD_SIZE, 1));
  const rank = intVar(env, ENV.PADDLE_TRAINER_ID, intVar(env, ENV.RANK, 0));
  if (rank >= worldSize) throw new EnvError(`rank ${rank} is not below the world size ${worldSize}`);
  const endpoints = (env[ENV.PADDLE_TRAINER_ENDPOINTS] ?? '').split(',').filter((s) => s !== '');
  if (worldSize > 1 && endpoints.length !== worldSize) {
    throw new EnvError(
      `${ENV.PADDLE_TRAINER_ENDPOINTS} lists ${endpoints.length} endpoints for a world size of ${worldSize}`,
    );
  }
  const secretFd = env[ENV.HARDNET_SECRET_FD] ? intVar(env, ENV.HARDNET_SECRET_FD) : undefined;
  return {
    rank,
    localRank: intVar(env, ENV.LOCAL_RANK, rank),
    worldSize,
    localWorldSize: intVar(env, ENV.LOCAL_WORLD_SIZE, worldSize),
    nodeRank: intVar(env, ENV.GROUP_RANK, 0),
    endpoints,
    currentEndpoint: env[ENV.PADDLE_CURRENT_ENDPOINT] ?? endpoints[rank] ?? '',
    masterAddr: env[ENV.MASTER_ADDR] ?? '127.0.0.1',
    masterPort: intVar(env, ENV.MASTER_PORT, 0),
    selectedGpus: env[ENV.FLAGS_selected_gpus] ?? env.CUDA_VISIBLE_DEVICES ?? '',
    restartCount: intVar(env, ENV.HARDNET_RESTART_COUNT, intVar(env, ENV.TORCHELASTIC_RESTART_COUNT, 0)),
    jobId: env[ENV.HARDNET_JOB_ID] ?? `local-${process.pid}`,
    logDir: env[ENV.HARDNET_LOG_DIR] ?? 'log',
    secretFd,
  };
}

/**
 * ipc:// endpoints for the ranks of one job on one host: a per-job directory under the system temp dir
 * (created with mode 0700 by the rank that binds the socket, removed at close). Unix socket paths are limited to
 * about 107 bytes, so the job id is kept short by the caller.
 */
export function ipcJobDir(jobId: string, tmpDir: string = process.env.TMPDIR || '/tmp'): string {
  return `${tmpDir.replace(/\/+$/, '')}/hardnet-${jobId}`;
}

/**
 * The job's directory on /dev/shm, where ranks on one host pass allReduce payloads (worker/collectives/shm.ts)
 * and share decoded images. Under the launcher it is the one the launcher made for this job (HARDNET_SHM_DIR,
 * whose name has a random part, so nobody can create it first) and removes when the job ends; without a launcher
 * (or with an explicit root) it is named after the job id.
 */
export function shmJobDir(jobId: string, shmRoot?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (shmRoot === undefined && env[ENV.HARDNET_SHM_DIR]) return env[ENV.HARDNET_SHM_DIR]!;
  return `${(shmRoot ?? '/dev/shm').replace(/\/+$/, '')}/hardnet-${jobId}`;
}

/** Whether the job's /dev/shm directory is the launcher's, which the workers leave in place for the whole job. */
export function shmJobDirFromLauncher(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env[ENV.HARDNET_SHM_DIR]);
}

export function ipcEndpoints(jobId: string, worldSize: number, tmpDir?: string): string[] {
  const dir = ipcJobDir(jobId, tmpDir);
  return Array.from({ length: worldSize }, (_, rank) => `ipc://${dir}/rank${rank}.sock`);
}
