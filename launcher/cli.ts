#!/usr/bin/env node
/**
 * The `launch` command: `launch [launch options] <command> [command options]`, like
 * `python -m paddle.distributed.launch [options] tools/train.py -c config.yaml`.
 * train and eval start one worker per device under supervision; infer, summary and prepare run here, in this
 * process; `run -- <program> [args]` supervises any program with the same environment (torchrun --no-python).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMMANDS, applySpec } from '../shared/commands.js';
import { describeFailure } from '../shared/errors.js';
import { makeJobSecret } from '../shared/job_secret.js';
import { randomJobId, readSecretFile, writeSecretFile } from './secret_file.js';
import type { JobSecret } from '../shared/env.js';
import { runJob } from './agent.js';
import { closeLogger, createLaunchLogger, openLogDir } from './logs.js';
import { preflightJob } from './preflight.js';
import { ShimMessageReader } from './shim_protocol.js';
import { checkGpuBackend } from './gpu_backend.js';
import {
  LaunchError,
  buildPlan,
  chooseDevices,
  chooseJobId,
  chooseNodes,
  listGpusWithNvidiaSmi,
  localAddresses,
} from './plan.js';

const WORKER_MAIN = fileURLToPath(new URL('../worker/main.js', import.meta.url));
const SHIM = fileURLToPath(new URL('./shim.js', import.meta.url));
/** paddle's default start port */
const DEFAULT_START_PORT = 6170;

export interface LaunchFlags {
  gpus?: string;
  selected_gpus?: string;
  nproc_per_node?: number;
  ips?: string;
  node_rank?: number;
  master_port?: number;
  started_port?: number;
  log_dir: string;
  max_restarts: number;
  grace: number;
  job_id?: string;
  secret_file?: string;
}

function intArg(what: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || n < min || n > max) {
      throw new InvalidArgumentError(
        `expected ${what} (an integer from ${min}${max < Number.MAX_SAFE_INTEGER ? ` to ${max}` : ''}), got ${JSON.stringify(value)}`,
      );
    }
    return n;
  };
}

function secondsArg(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError(`expected a number of seconds >= 0, got ${JSON.stringify(value)}`);
  return n;
}

/** A free TCP port for MASTER_PORT on one node (torchrun --standalone does the same). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The job secret. On one node a fresh one per job. Across nodes every launcher must hand its workers the same
 * CURVE keys, and keys must not travel in argv or the environment, so they come from a file all nodes can read
 * (mode 0600 on a shared filesystem), made once with makeJobSecret; its jobId names the job.
 */
function loadSecret(flags: LaunchFlags, multiNode: boolean): JobSecret | undefined {
  if (flags.secret_file === undefined) {
    if (multiNode) {
      throw new LaunchError(
        'several nodes need one shared job secret: give --secret_file <file>, a file every node reads (on a shared filesystem, mode 0600), ' +
          'made once with: launch secret <file>',
      );
    }
    return undefined;
  }
  try {
    return readSecretFile(flags.secret_file);
  } catch (e) {
    throw new LaunchError((e as Error).message);
  }
}

/** Plan, run and log one supervised job; resolves with the launcher's exit code. */
export async function launchDistributed(
  flags: LaunchFlags,
  program: string,
  args: (restart: number) => string[],
  argvForId: string[],
  preflight?: (worldSize: number) => void,
): Promise<number> {
  if (flags.gpus !== undefined && flags.selected_gpus !== undefined)
    throw new LaunchError('give --gpus or --selected_gpus, not both (they are the same option)');
  if (flags.master_port !== undefined && flags.started_port !== undefined)
    throw new LaunchError('give --master_port or --started_port, not both (they are the same option)');
  const devices = chooseDevices({
    gpus: flags.gpus ?? flags.selected_gpus,
    gpusFlag: flags.gpus !== undefined ? '--gpus' : '--selected_gpus',
    nprocPerNode: flags.nproc_per_node,
    env: process.env,
    detectGpus: listGpusWithNvidiaSmi,
  });
  // with GPUs assigned, train/eval run on them or not at all: no silent CPU fallback (gpu_backend.ts)
  checkGpuBackend(argvForId[0] ?? '', argvForId.slice(1), devices.gpus);
  const nodes = chooseNodes({
    ips: flags.ips,
    nodeRank: flags.node_rank,
    env: process.env,
    localAddresses: localAddresses(),
  });
  // usage errors in the job's config end here: before a port is probed, a log moved aside or a worker started
  preflight?.(nodes.hosts.length * devices.nproc);
  let basePort = flags.master_port ?? flags.started_port;
  if (basePort === undefined && process.env.FLAGS_START_PORT)
    basePort = intArg('FLAGS_START_PORT', 1, 65535)(process.env.FLAGS_START_PORT);
  if (basePort === undefined) basePort = nodes.hosts.length > 1 ? DEFAULT_START_PORT : await freePort();
  const shared = loadSecret(flags, nodes.hosts.length > 1);
  if (shared && flags.job_id !== undefined && flags.job_id !== shared.jobId) {
    throw new LaunchError(
      `--job_id ${flags.job_id} differs from the job id ${shared.jobId} in --secret_file ${flags.secret_file}`,
    );
  }
  const jobId = chooseJobId({
    jobId: flags.job_id ?? shared?.jobId,
    env: process.env,
    hosts: nodes.hosts,
    basePort,
    argv: argvForId,
  });
  // under Slurm the nodes usually share the submit directory: each node's launcher logs into its own node<N>/
  const logDir = path.resolve(
    flags.log_dir,
    nodes.source === 'slurm' && nodes.hosts.length > 1 ? `node${nodes.nodeRank}` : '',
  );
  const plan = buildPlan({ devices, nodes, jobId, basePort, logDir });
  const logs = openLogDir(logDir);
  const logger = createLaunchLogger(logDir);
  try {
    return await runJob({
      plan,
      program,
      args,
      maxRestarts: flags.max_restarts,
      graceMs: flags.grace * 1000,
      logs,
      logger,
      secretLine: JSON.stringify(shared ?? makeJobSecret(jobId)) + '\n',
    });
  } finally {
    await closeLogger(logger);
    logs.release();
  }
}

/**
 * Run one program in the foreground: the launcher's stdio and environment, under the same shim as the workers
 * (launcher/shim.ts: its own process group, cleared the moment the launcher dies, however it dies). SIGINT,
 * SIGTERM and SIGHUP to the launcher are passed to the program's group (a terminal's Ctrl-C reaches only the
 * launcher, since the group is not the terminal's). Resolves with the program's exit code; when the program was
 * killed by a signal, the launcher dies of the same signal, as the program would have run in its place.
 */
export function runForeground(program: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const shim = spawn(process.execPath, [SHIM, program, ...args], {
      detached: true,
      stdio: ['inherit', 'inherit', 'inherit', 'pipe', 'pipe'],
    });
    (shim.stdio[3] as net.Socket).on('error', () => {}).end(); // no job secret for a foreground command
    const lifeline = shim.stdio[4] as net.Socket;
    const reader = new ShimMessageReader();
    let spawnError: string | undefined;
    let status: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    lifeline.on('error', () => {});
    lifeline.on('data', (c: Buffer) => {
      const { messages } = reader.push(c);
      for (const m of messages) {
        if (m.kind === 'spawnError') spawnError = m.error;
        else if (m.kind === 'exited') status = { code: m.code, signal: m.signal };
      }
    });
    const pass = (sig: NodeJS.Signals) => {
      try {
        process.kill(-shim.pid!, sig);
      } catch {
        /* the group is gone already */
      }
    };
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
    for (const sig of signals) process.on(sig, pass);
    const done = () => {
      for (const sig of signals) process.off(sig, pass);
    };
    shim.once('error', (e) => {
      done();
      reject(new LaunchError(`cannot start ${program}: ${e.message}`));
    });
    shim.once('exit', (code, signal) => {
      done();
      if (spawnError !== undefined) return reject(new LaunchError(`cannot start ${spawnError}`));
      const end = status ?? { code, signal };
      if (end.signal) {
        process.kill(process.pid, end.signal); // the handlers are off: the launcher ends by that signal
        return;
      }
      resolve(end.code ?? 1);
    });
  });
}

/** Arguments of a training restart: resume from the last complete checkpoint unless the user chose --resume. */
export function trainArgs(args: string[], restart: number): string[] {
  if (restart === 0 || args.some((a) => a === '--resume' || a.startsWith('--resume='))) return args;
  return [...args, '--resume', 'auto'];
}

export function buildProgram(run: (job: Promise<number>) => void): Command {
  const program = new Command('launch')
    .description('Data-parallel HarDNet training on TensorFlow.js, launched like paddle.distributed.launch')
    .enablePositionalOptions()
    // throw instead of exiting, so main() gives every usage error the same exit code (2); subcommands inherit it
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .option('--gpus <ids>', 'physical GPU ids, one worker each, e.g. 0,1,2,3 (default: every visible GPU)')
    .option('--selected_gpus <ids>', 'the same as --gpus (paddle spelling)')
    .option(
      '--nproc_per_node <n>',
      'workers per node (CPU workers when no GPU is used; default 1 or one per GPU)',
      intArg('a worker count', 1),
    )
    .option(
      '--ips <list>',
      'comma-separated node addresses; the same command runs on each node (default: this node only)',
    )
    .option(
      '--node_rank <r>',
      "this node's index in --ips (default: found from this machine's addresses)",
      intArg('a node index', 0),
    )
    .option(
      '--master_port <port>',
      'rank 0 port; with --ips, local rank l listens on port + l (default: $FLAGS_START_PORT, else 6170 across nodes, a free port on one)',
      intArg('a TCP port', 1, 65535),
    )
    .option('--started_port <port>', 'the same as --master_port (paddle spelling)', intArg('a TCP port', 1, 65535))
    .option('--log_dir <dir>', 'where workerlog.N, endpoints.log and launch.log go', 'log')
    .option(
      '--max_restarts <k>',
      'restart all workers after a failure up to k times, resuming from the last checkpoint',
      intArg('a restart count', 0),
      0,
    )
    .addOption(
      new Option('--grace <seconds>', 'after a failure, how long the other workers get between SIGTERM and SIGKILL')
        .argParser(secondsArg)
        .default(10),
    )
    .option(
      '--secret_file <file>',
      'JSON job secret shared by all nodes (required with several nodes; its jobId is the job id)',
    )
    .option('--job_id <id>', 'job id (default: random on one node; derived from --ips, port and command across nodes)');

  /** The arguments the user typed after the command name, untouched, as commander itself splits them. */
  const rawArgsAfter = (name: string): string[] => {
    const { operands, unknown } = program.parseOptions(process.argv.slice(2));
    if (operands[0] !== name) throw new LaunchError(`cannot find the command ${name} on the command line`);
    return unknown;
  };

  for (const spec of COMMANDS) {
    const cmd = applySpec(program.command(spec.name), spec);
    cmd.action(async () => {
      const rest = rawArgsAfter(spec.name);
      if (spec.distributed) {
        const flags = program.opts<LaunchFlags>();
        run(
          launchDistributed(
            flags,
            process.execPath,
            (r) => [WORKER_MAIN, spec.name, ...(spec.name === 'train' ? trainArgs(rest, r) : rest)],
            [spec.name, ...rest],
            (worldSize) => preflightJob(spec.name, rest, worldSize),
          ),
        );
      } else {
        // infer, summary, prepare, plot: one worker process in the foreground, on the user's terminal (the
        // launcher never loads the worker's code into its own process: launcher/ does not import worker/)
        run(runForeground(process.execPath, [WORKER_MAIN, spec.name, ...rest]));
      }
    });
  }

  program
    .command('run')
    .description(
      'run any program under the launcher, with the same environment, logs and supervision (like torchrun --no-python)',
    )
    .argument('<program>', 'the program to run, e.g. node, python3, a script')
    .argument('[args...]', 'its arguments (put -- before the program so its options are not read as launch options)')
    .passThroughOptions()
    .action((prog: string, args: string[]) => {
      run(launchDistributed(program.opts<LaunchFlags>(), prog, () => args, ['run', prog, ...args]));
    });
  program
    .command('secret')
    .description(
      'write a fresh job secret to a new file (mode 0600, never overwritten) for --secret_file on every node',
    )
    .argument('<file>', 'the file to create, e.g. on a filesystem all nodes share')
    .option('--job_id <id>', 'the job id the secret names (default: random)')
    .action((file: string, o: { job_id?: string }) => {
      run(
        (async () => {
          const jobId = chooseJobId({ jobId: o.job_id ?? randomJobId(), env: {}, hosts: [], basePort: 0, argv: [] });
          try {
            writeSecretFile(file, jobId);
          } catch (e) {
            throw new LaunchError((e as Error).message);
          }
          process.stdout.write(
            `wrote a new job secret for job ${jobId} to ${file} (mode 0600)\n` +
              `every node of the job must read this same file: launch --ips <node,node,...> --secret_file ${file} train -c <config>\n`,
          );
          return 0;
        })(),
      );
    });
  return program;
}

async function main(): Promise<void> {
  let job: Promise<number> | undefined;
  const program = buildProgram((j) => (job = j));
  try {
    await program.parseAsync(process.argv);
    if (job) process.exitCode = await job;
  } catch (e) {
    if (e instanceof CommanderError) {
      // the message is already printed; --help and --version end here with 0
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    // one line and the error's exit code (2 for usage and config errors: LaunchError, ConfigError, ...)
    const { exitCode, line } = describeFailure(e);
    process.stderr.write(`launch: ${line}\n`);
    if (process.env.HARDNET_DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    process.exitCode = exitCode;
  }
}

// Run only as the program (also through npm's bin symlink), not when a test imports buildProgram.
if (process.argv[1] && fileURLToPath(import.meta.url) === fs.realpathSync(process.argv[1])) await main();
