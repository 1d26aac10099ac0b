/**
 * Usage errors before anything starts. `launch train|eval` loads and validates the job's config here, in the
 * launcher, with the same loader the workers use (shared/config.ts), and checks that the files it names exist and
 * can be read, before any worker starts, any log is moved aside or any socket is opened. A mistake in the config is
 * then one line naming the file and the key, exit code 2, no restart, and log/ as it was; errors only a running
 * worker can meet (a corrupt image under strict_data, a peer that stops answering) still end in the root-cause block.
 */
import { Command, CommanderError } from 'commander';
import * as fs from 'node:fs';
import { applySpec, commandSpec } from '../shared/commands.js';
import {
  ConfigError,
  isBuiltinDataset,
  loadConfig,
  quickstartConfigPath,
  type DataConfig,
  type TrainConfig,
} from '../shared/config.js';
import { LaunchError } from './plan.js';

/** The worker options preflight reads (the rest are the worker's business). */
interface JobArgs {
  config?: string;
  override: string[];
  resume?: string;
}

/** The worker's argv parsed with the same spec the worker parses it with (shared/commands.ts). */
function parseJobArgs(command: string, args: string[]): JobArgs {
  const spec = commandSpec(command);
  if (!spec) throw new LaunchError(`unknown command ${command}`);
  const cmd = applySpec(new Command(command), spec)
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} })
    .allowExcessArguments(false);
  try {
    cmd.parse(args, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) throw new LaunchError(`${command}: ${e.message.replace(/^error: /, '')}`);
    throw e;
  }
  return cmd.opts<JobArgs>();
}

/** A config error as one line: js-yaml appends a multi-line excerpt of the file after its "(line:column)". */
function oneLine(message: string): string {
  return message.split('\n')[0].trim();
}

type Kind = 'file' | 'directory' | 'any';

/** Why `p` cannot be used as a `kind`, or undefined when it can (it exists, is that kind and is readable). */
function unusable(p: string, kind: Kind): string | undefined {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT'
      ? 'does not exist'
      : `cannot be read (${(e as NodeJS.ErrnoException).code})`;
  }
  if (kind === 'file' && !st.isFile()) return 'is not a file';
  if (kind === 'directory' && !st.isDirectory()) return 'is not a directory';
  try {
    fs.accessSync(p, st.isDirectory() ? fs.constants.R_OK | fs.constants.X_OK : fs.constants.R_OK);
  } catch (e) {
    return `cannot be read (${(e as NodeJS.ErrnoException).code})`;
  }
  return undefined;
}

function requirePath(source: string, key: string, p: string, kind: Kind): void {
  const why = unusable(p, kind);
  if (why !== undefined) throw new LaunchError(`${source}: config key ${key}: ${JSON.stringify(p)} ${why}`);
}

function checkData(source: string, section: 'TRAIN' | 'VALID', data: DataConfig): void {
  if (isBuiltinDataset(data)) return; // the bundled subset, written out by the worker on first use
  requirePath(source, `${section}.file_list`, data.file_list, 'file');
  requirePath(source, `${section}.data_dir`, data.data_dir, 'directory');
}

/**
 * A checkpoint directory, or its `.old` twin that a save killed between its two renames leaves (the worker's
 * checkpoint loader takes either and checks what is inside).
 */
function checkCheckpoint(what: string, p: string): void {
  const dir = p.replace(/\/weights\.json$/, '');
  if (unusable(p, 'any') === undefined || unusable(`${dir}.old`, 'directory') === undefined) return;
  throw new LaunchError(`${what}: ${JSON.stringify(p)} ${unusable(p, 'any')}`);
}

/**
 * Validate what `launch <command> <args>` will run with `worldSize` workers in all; throws LaunchError (exit 2)
 * with one line naming the file and key. Returns the validated config.
 */
export function preflightJob(command: string, args: string[], worldSize: number): TrainConfig | undefined {
  if (command !== 'train' && command !== 'eval') return undefined;
  const o = parseJobArgs(command, args);
  let cfg: TrainConfig;
  try {
    // warnings are the workers' to log (rank 0's reach the terminal); here only errors matter
    // each command forces its mode, as the worker loads the config (train.ts, eval.ts)
    cfg = loadConfig(o.config, o.override ?? [], {
      warn: () => {},
      worldSize,
      mode: command === 'eval' ? 'valid' : 'train',
    });
  } catch (e) {
    if (e instanceof ConfigError) throw new LaunchError(oneLine(e.message));
    throw e;
  }
  const source = o.config ?? quickstartConfigPath(); // as loadConfig names it
  if (command === 'train') {
    if (cfg.TRAIN) checkData(source, 'TRAIN', cfg.TRAIN);
    if (cfg.validate && cfg.VALID) checkData(source, 'VALID', cfg.VALID);
    if (o.resume !== undefined && o.resume !== 'auto') checkCheckpoint('train --resume', o.resume);
    else if (o.resume === undefined && cfg.checkpoints)
      checkCheckpoint(`${source}: config key checkpoints`, cfg.checkpoints);
    // the worker loads pretrained_model only when it does not resume
    if (o.resume === undefined && !cfg.checkpoints && cfg.pretrained_model)
      checkCheckpoint(`${source}: config key pretrained_model`, cfg.pretrained_model);
  } else {
    if (cfg.VALID) checkData(source, 'VALID', cfg.VALID);
    if (!cfg.pretrained_model)
      throw new LaunchError(
        `${source}: config key pretrained_model: eval needs the weights: -o pretrained_model=<.pth file or checkpoint directory>`,
      );
    checkCheckpoint(`${source}: config key pretrained_model`, cfg.pretrained_model);
  }
  return cfg;
}
