/**
 * What to start: devices, nodes, ranks, endpoints and each worker's environment (torchrun's "worker spec").
 * Everything here is a pure function of the options, the environment and a few facts about the machine (GPU
 * list, local addresses) that the caller passes in, so every rule can be tested without a GPU or a cluster.
 */
import { UsageError } from '../shared/errors.js';
import { withCollectiveMallocTunables } from '../shared/malloc_tunables.js';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatWorkerEnv, type WorkerEnv } from '../shared/env.js';

/** A user mistake in the launch options or environment; the CLI prints the message and exits 2. */
/** A launch option, or what the environment says, that cannot work (exit 2). */
export class LaunchError extends UsageError {}

const GPU_ID = /^\d+$/;

/** Parse "0,1,2,3" (the --gpus value). Ids are physical GPU indices; duplicates are a mistake, not a request. */
export function parseGpuList(text: string, flag = '--gpus'): string[] {
  const ids = text.split(',').map((s) => s.trim());
  const bad = ids.filter((id) => !GPU_ID.test(id));
  if (text.trim() === '' || bad.length > 0) {
    throw new LaunchError(
      `${flag} expects a comma-separated list of GPU ids such as 0,1,2,3; got ${JSON.stringify(text)}` +
        (bad.length > 0 && text.trim() !== ''
          ? ` (${bad.map((b) => JSON.stringify(b)).join(', ')} is not a GPU id)`
          : ''),
    );
  }
  const seen = new Set<string>();
  for (const id of ids) {
    if (seen.has(id))
      throw new LaunchError(`${flag} lists GPU ${id} twice in ${JSON.stringify(text)}; give each GPU once`);
    seen.add(id);
  }
  return ids.map((id) => String(Number(id)));
}

/** GPU indices as nvidia-smi lists them; [] when there is no nvidia-smi or no GPU (the CPU case). */
export function listGpusWithNvidiaSmi(): string[] {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=index', '--format=csv,noheader'], {
      encoding: 'utf8',
      timeout: 15_000,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return out
      .split('\n')
      .map((s) => s.trim())
      .filter((s) => GPU_ID.test(s));
  } catch {
    return [];
  }
}

export interface DeviceChoice {
  /** one GPU id per local worker, or null for CPU workers */
  gpus: string[] | null;
  nproc: number;
}

export interface DeviceOptions {
  gpus?: string;
  /** which flag gave `gpus`, for error messages (--gpus or --selected_gpus) */
  gpusFlag?: string;
  nprocPerNode?: number;
  env: NodeJS.ProcessEnv;
  detectGpus: () => string[];
}

/**
 * One worker per listed GPU; without --gpus every GPU the parent may see (CUDA_VISIBLE_DEVICES when set, else
 * nvidia-smi's list); with no GPU, --nproc_per_node CPU workers (default 1).
 */
export function chooseDevices(o: DeviceOptions): DeviceChoice {
  const flag = o.gpusFlag ?? '--gpus';
  const parentVisible = o.env.CUDA_VISIBLE_DEVICES;
  const visible =
    parentVisible === undefined
      ? undefined
      : parentVisible
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '' && s !== '-1');
  if (o.gpus !== undefined) {
    const gpus = parseGpuList(o.gpus, flag);
    if (visible !== undefined) {
      // Never remap silently: a user who wrote --gpus 2 with CUDA_VISIBLE_DEVICES=0,1 meant a GPU they cannot have.
      const outside = gpus.filter((g) => !visible.includes(g));
      if (outside.length > 0) {
        throw new LaunchError(
          `${flag} ${o.gpus}: GPU ${outside.join(', ')} is not in CUDA_VISIBLE_DEVICES=${JSON.stringify(parentVisible)}; ` +
            `${flag} takes physical GPU ids and every one must be visible (unset CUDA_VISIBLE_DEVICES or pick from it)`,
        );
      }
    }
    if (o.nprocPerNode !== undefined && o.nprocPerNode !== gpus.length) {
      throw new LaunchError(
        `--nproc_per_node ${o.nprocPerNode} disagrees with ${flag} ${o.gpus} (${gpus.length} GPUs); one worker runs per GPU, drop one of the two`,
      );
    }
    return { gpus, nproc: gpus.length };
  }
  const available = visible ?? o.detectGpus();
  if (available.length > 0) {
    if (o.nprocPerNode !== undefined && o.nprocPerNode > available.length) {
      throw new LaunchError(
        `--nproc_per_node ${o.nprocPerNode} asks for more workers than the ${available.length} GPUs visible (${available.join(',')})`,
      );
    }
    const gpus = available.slice(0, o.nprocPerNode ?? available.length);
    return { gpus, nproc: gpus.length };
  }
  const nproc = o.nprocPerNode ?? 1;
  if (nproc < 1) throw new LaunchError(`--nproc_per_node must be at least 1; got ${nproc}`);
  return { gpus: null, nproc };
}

/** Most hosts a node list may expand to (Slurm's own limit for one range is 65536). */
export const MAX_SLURM_HOSTS = 65536;

/**
 * Expand a Slurm hostlist into host names, as `scontrol show hostnames` does: comma- (or blank-) separated
 * entries, each a name with bracket groups of comma-separated numbers and ranges, zero padding taken from the
 * range's low end (`gpu[01-03,07]`: gpu01 gpu02 gpu03 gpu07; `n[8-10]`: n8 n9 n10), several groups expanding
 * left to right (`rack[1-2]-node[01-02]`: rack1-node01 rack1-node02 rack2-node01 rack2-node02). Written by hand
 * because the launcher must not require Slurm's tools on the PATH; bounded, since the list is only text.
 */
export function expandSlurmNodelist(list: string, variable = 'SLURM_JOB_NODELIST'): string[] {
  const fail = (why: string): never => {
    throw new LaunchError(`${variable}=${JSON.stringify(list)}: ${why}`);
  };
  // split on commas and blanks outside brackets
  const entries: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of list) {
    if (ch === '[') {
      if (depth > 0) fail('nested brackets');
      depth++;
    } else if (ch === ']') {
      if (depth === 0) fail("a ']' without its '['");
      depth--;
    }
    if (depth === 0 && (ch === ',' || /\s/.test(ch))) {
      entries.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (depth > 0) fail("a '[' without its ']'");
  entries.push(cur);
  const hosts: string[] = [];
  for (const entry of entries.filter((e) => e !== '')) {
    // text and bracket groups alternate: "rack", "1-2", "-node", "01-02", ""
    const pieces = entry.split(/\[([^\]]*)\]/);
    let names = [pieces[0]];
    for (let g = 1; g < pieces.length; g += 2) {
      const values: string[] = [];
      for (const range of pieces[g].split(',')) {
        const m = /^(\d+)(?:-(\d+))?$/.exec(range.trim());
        if (!m) fail(`cannot read the range ${JSON.stringify(range)}`);
        const lo = Number(m![1]);
        const hi = m![2] === undefined ? lo : Number(m![2]);
        if (hi < lo) fail(`the range ${JSON.stringify(range)} runs backwards`);
        if (hi - lo + 1 > MAX_SLURM_HOSTS)
          fail(`the range ${JSON.stringify(range)} has more than ${MAX_SLURM_HOSTS} hosts`);
        for (let i = lo; i <= hi; i++) values.push(String(i).padStart(m![1].length, '0'));
      }
      if (names.length * values.length + hosts.length > MAX_SLURM_HOSTS) fail(`more than ${MAX_SLURM_HOSTS} hosts`);
      names = names.flatMap((n) => values.map((v) => n + v + pieces[g + 1]));
    }
    hosts.push(...names);
    if (hosts.length > MAX_SLURM_HOSTS) fail(`more than ${MAX_SLURM_HOSTS} hosts`);
  }
  return hosts;
}

export interface NodeChoice {
  hosts: string[];
  nodeRank: number;
  source: 'single' | '--ips' | 'slurm';
}

export interface NodeOptions {
  ips?: string;
  nodeRank?: number;
  env: NodeJS.ProcessEnv;
  /** this machine's addresses and host names, to find itself in --ips */
  localAddresses: string[];
}

/** Every IPv4/IPv6 address of this machine plus its host name. */
export function localAddresses(): string[] {
  const out = [os.hostname()];
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) out.push(a.address);
  return out;
}

/**
 * The nodes of the Slurm step this launcher runs in (`srun --ntasks-per-node=1 npx launch ...`: one launcher per
 * node, SLURM_NODEID its index in SLURM_STEP_NODELIST). Outside a step (the batch script itself, an salloc shell)
 * Slurm starts nothing on the other nodes: a one-node allocation is this node alone, a larger one an error, since
 * a launcher there would wait for peers that never start.
 */
function slurmNodes(env: NodeJS.ProcessEnv): string[] | undefined {
  if (!env.SLURM_STEP_NODELIST) {
    const job = expandSlurmNodelist(env.SLURM_JOB_NODELIST ?? '');
    if (job.length <= 1) return undefined;
    throw new LaunchError(
      `SLURM_JOB_NODELIST=${env.SLURM_JOB_NODELIST} has ${job.length} nodes, but this launcher is not in an srun step, so no launcher ` +
        'starts on the others: run one per node with `srun --ntasks-per-node=1 npx launch ...` (or give --ips)',
    );
  }
  const tasksPerNode = env.SLURM_STEP_TASKS_PER_NODE;
  // Slurm's form: "1(x2)" for two nodes with one task each, "2,1" for uneven counts
  if (tasksPerNode !== undefined && !tasksPerNode.split(',').every((t) => /^1(\(x\d+\))?$/.test(t.trim()))) {
    throw new LaunchError(
      `SLURM_STEP_TASKS_PER_NODE=${tasksPerNode}: the launcher starts every worker of its node itself, so Slurm must start ` +
        'one launcher per node: srun --ntasks-per-node=1',
    );
  }
  return expandSlurmNodelist(env.SLURM_STEP_NODELIST, 'SLURM_STEP_NODELIST');
}

export function chooseNodes(o: NodeOptions): NodeChoice {
  let hosts: string[];
  let source: NodeChoice['source'];
  if (o.ips !== undefined) {
    hosts = o.ips.split(',').map((s) => s.trim());
    if (hosts.some((h) => h === '' || /[\s/]/.test(h))) {
      throw new LaunchError(
        `--ips expects a comma-separated list of node addresses such as 10.0.0.1,10.0.0.2; got ${JSON.stringify(o.ips)}`,
      );
    }
    source = '--ips';
  } else if (o.env.SLURM_STEP_NODELIST || o.env.SLURM_JOB_NODELIST) {
    const slurm = slurmNodes(o.env);
    if (slurm === undefined) return { hosts: ['127.0.0.1'], nodeRank: o.nodeRank ?? 0, source: 'single' };
    hosts = slurm;
    source = 'slurm';
  } else {
    return { hosts: ['127.0.0.1'], nodeRank: o.nodeRank ?? 0, source: 'single' };
  }
  let nodeRank = o.nodeRank;
  if (nodeRank === undefined && source === 'slurm' && o.env.SLURM_NODEID !== undefined) {
    nodeRank = Number(o.env.SLURM_NODEID);
    if (!/^\d+$/.test(o.env.SLURM_NODEID) || nodeRank >= hosts.length) {
      throw new LaunchError(
        `SLURM_NODEID=${JSON.stringify(o.env.SLURM_NODEID)} is not a node index of SLURM_STEP_NODELIST ${hosts.join(',')}`,
      );
    }
  }
  if (nodeRank === undefined) {
    if (hosts.length === 1) nodeRank = 0;
    else {
      const matches = hosts.map((h, i) => (o.localAddresses.includes(h) ? i : -1)).filter((i) => i >= 0);
      if (matches.length === 0) {
        throw new LaunchError(
          `none of this machine's addresses (${o.localAddresses.join(', ')}) is in ${source === 'slurm' ? 'SLURM_JOB_NODELIST' : '--ips'} ` +
            `${hosts.join(',')}; give --node_rank`,
        );
      }
      if (matches.length > 1) {
        throw new LaunchError(
          `this machine matches several nodes of ${hosts.join(',')} (indices ${matches.join(', ')}); give --node_rank`,
        );
      }
      nodeRank = matches[0];
    }
  }
  if (nodeRank >= hosts.length)
    throw new LaunchError(
      `--node_rank ${nodeRank} is not below the number of nodes ${hosts.length} (${hosts.join(',')})`,
    );
  return { hosts, nodeRank, source };
}

const JOB_ID = /^[A-Za-z0-9._-]{1,48}$/;

/**
 * The job id names the ipc directory and is part of every collective message. On one node it is random, so two
 * jobs never share sockets; across nodes every launcher must compute the same one, so it is --job_id, Slurm's
 * job id, or a hash of what every node was given identically (hosts, port, command line).
 */
export function chooseJobId(o: {
  jobId?: string;
  env: NodeJS.ProcessEnv;
  hosts: string[];
  basePort: number;
  argv: string[];
}): string {
  if (o.jobId !== undefined) {
    if (!JOB_ID.test(o.jobId))
      throw new LaunchError(`--job_id ${JSON.stringify(o.jobId)}: use 1-48 letters, digits, '.', '_' or '-'`);
    return o.jobId;
  }
  if (o.hosts.length > 1) {
    // job and step: two srun steps of one allocation may run at the same time
    const slurm =
      o.env.SLURM_JOB_ID && `slurm-${o.env.SLURM_JOB_ID}${o.env.SLURM_STEP_ID ? `.${o.env.SLURM_STEP_ID}` : ''}`;
    if (slurm && JOB_ID.test(slurm)) return slurm;
    const h = createHash('sha256')
      .update(JSON.stringify([o.hosts, o.basePort, o.argv]))
      .digest('hex');
    return `job-${h.slice(0, 16)}`;
  }
  return `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

export interface WorkerSlot {
  rank: number;
  localRank: number;
  /** "gpu 3" or "cpu", for the start-up table */
  device: string;
  /** the one GPU this worker may see, or undefined for a CPU worker */
  gpu?: string;
  env: WorkerEnv;
}

export interface Plan {
  jobId: string;
  nodeRank: number;
  hosts: string[];
  nprocPerNode: number;
  worldSize: number;
  endpoints: string[];
  masterAddr: string;
  masterPort: number;
  /** directory of the ipc sockets (single node, several workers), created and removed by the launcher */
  ipcDir?: string;
  logDir: string;
  workers: WorkerSlot[];
}

export interface PlanInput {
  devices: DeviceChoice;
  nodes: NodeChoice;
  jobId: string;
  /** single node: MASTER_PORT; several nodes: rank 0's port, local rank l of every node listens on basePort + l */
  basePort: number;
  logDir: string;
  /** parent of the per-job ipc directory (os.tmpdir()) */
  ipcRoot?: string;
}

/** Longest path a Unix socket may have on Linux (sun_path is 108 bytes including the NUL). */
const MAX_IPC_PATH = 107;

export function buildPlan(p: PlanInput): Plan {
  const { hosts, nodeRank } = p.nodes;
  const nproc = p.devices.nproc;
  const worldSize = hosts.length * nproc;
  let endpoints: string[] = [];
  let ipcDir: string | undefined;
  if (worldSize > 1 && hosts.length === 1) {
    // One host: Unix sockets in a directory of this job only, so concurrent jobs cannot collide on ports.
    // a random part: the job id may be guessed (--job_id, Slurm's id), and the launcher must be the one who
    // creates this directory (agent.ts), never accept one that someone made first
    ipcDir = path.join(p.ipcRoot ?? os.tmpdir(), `hardnet-${p.jobId}-${randomBytes(4).toString('hex')}`);
    endpoints = Array.from({ length: worldSize }, (_, r) => `ipc://${ipcDir}/rank${r}.sock`);
    const longest = endpoints[endpoints.length - 1].slice('ipc://'.length);
    if (Buffer.byteLength(longest) > MAX_IPC_PATH) {
      throw new LaunchError(
        `the socket path ${longest} is longer than ${MAX_IPC_PATH} bytes; set TMPDIR to a shorter directory or use a shorter --job_id`,
      );
    }
  } else if (worldSize > 1) {
    if (p.basePort + nproc - 1 > 65535)
      throw new LaunchError(`--started_port ${p.basePort} + ${nproc} workers runs past port 65535`);
    endpoints = hosts.flatMap((h) =>
      Array.from({ length: nproc }, (_, l) => `tcp://${h.includes(':') ? `[${h}]` : h}:${p.basePort + l}`),
    );
  }
  const workers: WorkerSlot[] = [];
  for (let localRank = 0; localRank < nproc; localRank++) {
    const rank = nodeRank * nproc + localRank;
    const gpu = p.devices.gpus?.[localRank];
    workers.push({
      rank,
      localRank,
      device: gpu === undefined ? 'cpu' : `gpu ${gpu}`,
      gpu,
      env: {
        rank,
        localRank,
        worldSize,
        localWorldSize: nproc,
        nodeRank,
        endpoints,
        currentEndpoint: endpoints[rank] ?? '',
        masterAddr: hosts[0],
        masterPort: p.basePort,
        selectedGpus: gpu ?? '',
        restartCount: 0,
        jobId: p.jobId,
        logDir: p.logDir,
      },
    });
  }
  return {
    jobId: p.jobId,
    nodeRank,
    hosts,
    nprocPerNode: nproc,
    worldSize,
    endpoints,
    masterAddr: hosts[0],
    masterPort: p.basePort,
    ipcDir,
    logDir: p.logDir,
    workers,
  };
}

/** The full environment of one worker process: the parent's, the contract's variables, and its one GPU. */
export function workerProcessEnv(
  slot: WorkerSlot,
  parent: NodeJS.ProcessEnv,
  restartCount: number,
  secretFd: number | undefined,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...parent, ...formatWorkerEnv({ ...slot.env, restartCount, secretFd }) };
  // An inherited HARDNET_SECRET_FD (a launch inside a launch) would point the worker at the wrong pipe.
  if (secretFd === undefined) delete env.HARDNET_SECRET_FD;
  // malloc settings that keep ZeroMQ's receive buffers' pages mapped; glibc reads them only at process start
  env.GLIBC_TUNABLES = withCollectiveMallocTunables(parent.GLIBC_TUNABLES);
  if (slot.gpu !== undefined) {
    env.CUDA_VISIBLE_DEVICES = slot.gpu;
    env.CUDA_DEVICE_ORDER = 'PCI_BUS_ID';
  }
  // TensorFlow (tfjs-node) settings for one worker per GPU, unless the user set them: take GPU memory as needed
  // rather than all of it at start (so an eval or infer beside training fits), and keep TensorFlow's start-up
  // INFO/WARNING lines out of the terminal and the worker logs
  env.TF_FORCE_GPU_ALLOW_GROWTH ??= 'true';
  env.TF_CPP_MIN_LOG_LEVEL ??= '2';
  return env;
}
