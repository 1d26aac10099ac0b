/**
 * Training checkpoints: `<model_save_dir>/<name>/<epoch>/` (and `best_model/`) holding
 *   weights.json + weights.bin     every parameter and BN buffer by official name, in TensorFlow.js's
 *                                  weightsManifest format (tf.io.decodeWeights reads it)
 *   optimizer.json + optimizer.bin the Momentum velocities, same format
 *   state.json                     epoch, iteration (LR position), best accuracy, sampler and RNG state
 *   model.json                     the same weights.bin as a Layers model: stock TensorFlow.js loads it with
 *                                  tf.loadLayersModel (see model/export_layers.ts)
 *
 * Written atomically: everything goes into a temporary sibling directory that is renamed into place only when
 * complete, so a crash mid-save leaves the previous checkpoint intact and a directory that exists is complete.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { HarDNet } from '../model/hardnet.js';
import type { Optimizer } from '../optim/momentum.js';
import { layersModelJson } from '../model/export_layers.js';
import { CheckpointError } from '../../shared/errors.js';

export const CHECKPOINT_FORMAT = 'hardnet-launch-checkpoint';

export interface TrainState {
  /** last completed epoch */
  epoch: number;
  /** iterations completed (the LR schedule's position) */
  iteration: number;
  bestTop1: number;
  bestEpoch: number;
  model: string;
  classesNum: number;
  /** anything else the loop needs back bit for bit: sampler position, RNG states */
  extra?: Record<string, unknown>;
}

interface Manifest {
  format: string;
  version: 1;
  weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
}

async function writeTensors(
  dir: string,
  base: string,
  tensors: Map<string, tf.Tensor>,
): Promise<tf.io.WeightsManifestEntry[]> {
  const named = [...tensors].map(([name, tensor]) => ({ name, tensor }));
  const { data, specs } = await tf.io.encodeWeights(named);
  const manifest: Manifest = {
    format: CHECKPOINT_FORMAT,
    version: 1,
    weightsManifest: [{ paths: [`${base}.bin`], weights: specs }],
  };
  writeFileSynced(path.join(dir, `${base}.bin`), new Uint8Array(data));
  writeFileSynced(path.join(dir, `${base}.json`), JSON.stringify(manifest));
  return specs;
}

/** a manifest or state.json of this tool is kilobytes */
const MAX_JSON_BYTES = 16 << 20;
/** all of one checkpoint's tensors (a HarDNet85 with its velocities is about 300 MB) */
const MAX_WEIGHTS_BYTES = 4 * 2 ** 30;
const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1 };

/**
 * A regular file of the checkpoint, read whole: opened without following a symlink at its name and without
 * blocking on a FIFO, refused unless it is a regular file of at most `max` bytes (or exactly `expect` bytes).
 */
function readCheckpointFile(file: string, limit: { max?: number; expect?: number; describe?: string }): Buffer {
  const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
  let fd: number;
  try {
    fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CheckpointError(
      `${file}: cannot open it (${code === 'ELOOP' ? 'a symlink; a checkpoint holds regular files' : (code ?? (e as Error).message)})`,
      file,
    );
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new CheckpointError(`${file} is not a regular file`, file);
    if (limit.expect !== undefined && st.size !== limit.expect)
      throw new CheckpointError(
        `${file} is ${st.size} bytes, but ${limit.describe ?? 'the manifest describes'} ${limit.expect}`,
        file,
      );
    if (limit.max !== undefined && st.size > limit.max)
      throw new CheckpointError(
        `${file} is ${st.size} bytes, more than the ${limit.max} a checkpoint file of this kind may have`,
        file,
      );
    const buf = Buffer.allocUnsafe(st.size);
    for (let done = 0; done < buf.length; ) {
      const n = fs.readSync(fd, buf, done, buf.length - done, done);
      if (n === 0)
        throw new CheckpointError(`${file} ended at byte ${done} while being read (${st.size} expected)`, file);
      done += n;
    }
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

/** A JSON file of a checkpoint; a parse error names the file, never echoes its content. */
function readCheckpointJson(file: string): unknown {
  const text = readCheckpointFile(file, { max: MAX_JSON_BYTES }).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw new CheckpointError(`${file} is not valid JSON (truncated or not written by this tool)`, file);
  }
}

/** A weights path must name a file in the checkpoint's own directory: no separators, no "..", nothing absolute. */
const PLAIN_FILE_NAME = /^(?!\.\.?$)[A-Za-z0-9._-]{1,255}$/;

/**
 * Read the tensors of `<dir>/<base>.json` (weights or optimizer). The manifest comes from a file anyone may have
 * handed the user, so every path is a plain file name inside `dir`, and the bytes its specs describe are
 * computed and compared with each file's size before a byte of it is read.
 */
export function readCheckpointTensors(dir: string, base: string): Map<string, tf.Tensor> {
  const file = path.join(dir, `${base}.json`);
  const manifest = readCheckpointJson(file) as Partial<Manifest> | null;
  if (manifest === null || typeof manifest !== 'object' || manifest.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(
      `${file}: not a checkpoint of this tool (format ${JSON.stringify((manifest as { format?: unknown } | null)?.format ?? null)})`,
      file,
    );
  }
  const group = Array.isArray(manifest.weightsManifest) ? manifest.weightsManifest[0] : undefined;
  if (!group || !Array.isArray(group.paths) || group.paths.length === 0 || !Array.isArray(group.weights)) {
    throw new CheckpointError(`${file}: weightsManifest[0] must have a list of paths and a list of weights`, file);
  }
  group.paths.forEach((p, i) => {
    if (typeof p !== 'string' || !PLAIN_FILE_NAME.test(p)) {
      throw new CheckpointError(
        `${file}: paths[${i}] ${JSON.stringify(p)} is not a plain file name in the checkpoint directory`,
        file,
      );
    }
  });
  let total = 0;
  for (const [i, w] of group.weights.entries()) {
    const bytes = DTYPE_BYTES[w?.dtype as string];
    if (
      typeof w?.name !== 'string' ||
      bytes === undefined ||
      w.quantization !== undefined ||
      !Array.isArray(w.shape) ||
      !w.shape.every((d) => Number.isSafeInteger(d) && d >= 0)
    ) {
      throw new CheckpointError(
        `${file}: weights[${i}] ${JSON.stringify(w?.name ?? null)}: shape ${JSON.stringify(w?.shape ?? null)}, dtype ${JSON.stringify(w?.dtype ?? null)} is not a tensor this tool writes`,
        file,
      );
    }
    total += w.shape.reduce((a, b) => a * b, 1) * bytes;
  }
  if (total > MAX_WEIGHTS_BYTES)
    throw new CheckpointError(
      `${file}: the manifest describes ${total} bytes of tensors, more than ${MAX_WEIGHTS_BYTES}`,
      file,
    );
  // this tool writes one file per manifest
  if (group.paths.length !== 1)
    throw new CheckpointError(
      `${file}: ${group.paths.length} weight files listed; a checkpoint of this tool has one`,
      file,
    );
  const bin = readCheckpointFile(path.join(dir, group.paths[0]), { expect: total, describe: 'the manifest describes' });
  const decoded = tf.io.decodeWeights(
    bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength) as ArrayBuffer,
    group.weights,
  );
  return new Map(Object.entries(decoded));
}

function writeFileSynced(file: string, data: string | Uint8Array): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** fsync a directory, so that the renames in it survive a power cut, not only a crash */
function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Save model, optimizer and state into `dir`, replacing an older checkpoint there only once the new one is whole.
 *
 * POSIX cannot rename a directory over a non-empty one, so replacing takes two renames: the old copy moves to
 * `<dir>.old`, then the new one into `<dir>`. A process killed between the two leaves only `<dir>.old`, which
 * `resolveCheckpoint` falls back to, so some complete checkpoint is always there under the name.
 */
export async function saveCheckpoint(
  dir: string,
  model: HarDNet,
  opt: Optimizer | undefined,
  state: TrainState,
): Promise<void> {
  const parent = path.dirname(dir);
  const base = path.basename(dir);
  fs.mkdirSync(parent, { recursive: true });
  // temporary copies of saves that were killed earlier (this process writes one save at a time)
  for (const n of fs.readdirSync(parent))
    if (n.startsWith(`.${base}.tmp-`)) fs.rmSync(path.join(parent, n), { recursive: true, force: true });
  const tmp = fs.mkdtempSync(path.join(parent, `.${base}.tmp-`));
  const old = `${dir}.old`;
  try {
    const specs = await writeTensors(tmp, 'weights', new Map([...model.weights, ...model.buffers]));
    // the same weights.bin, described for tf.loadLayersModel
    writeFileSynced(path.join(tmp, 'model.json'), JSON.stringify(layersModelJson(model, specs, 'weights.bin')));
    if (opt) {
      const velocities = opt.velocityTensors();
      try {
        await writeTensors(tmp, 'optimizer', velocities);
      } finally {
        tf.dispose([...velocities.values()]);
      }
    }
    writeFileSynced(path.join(tmp, 'state.json'), JSON.stringify(state, null, 1));
    if (isCheckpoint(dir)) {
      fs.rmSync(old, { recursive: true, force: true }); // <dir> is whole, so <dir>.old is redundant
      fs.renameSync(dir, old);
    } else {
      fs.rmSync(dir, { recursive: true, force: true }); // never a complete checkpoint (older tool or by hand)
    }
    fs.renameSync(tmp, dir);
    syncDir(parent);
    fs.rmSync(old, { recursive: true, force: true });
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw new CheckpointError(`saving checkpoint ${dir} failed: ${(e as Error).message}`, dir);
  }
}

export function isCheckpoint(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'state.json')) && fs.existsSync(path.join(dir, 'weights.json'));
}

/**
 * `dir` if it holds a complete checkpoint, else `<dir>.old` left by a save killed between its two renames. A path to
 * a checkpoint's weights.json stands for its directory.
 */
export function resolveCheckpoint(requested: string): string | undefined {
  const dir = path.basename(requested) === 'weights.json' ? path.dirname(requested) : requested;
  if (isCheckpoint(dir)) return dir;
  return isCheckpoint(`${dir}.old`) ? `${dir}.old` : undefined;
}

/** The state.json of a resolved checkpoint directory. */
export function readState(dir: string): TrainState {
  return readCheckpointJson(path.join(dir, 'state.json')) as TrainState;
}

/** Load weights (and the optimizer's velocities when given) and return the saved state. */
export function loadCheckpoint(requested: string, model: HarDNet, opt?: Optimizer): TrainState {
  const dir = resolveCheckpoint(requested);
  if (!dir)
    throw new CheckpointError(
      `checkpoint '${requested}' does not exist or is incomplete (no state.json/weights.json)`,
      requested,
    );
  const state = readState(dir);
  loadCheckpointWeights(dir, model);
  if (opt && fs.existsSync(path.join(dir, 'optimizer.json'))) {
    const velocities = readCheckpointTensors(dir, 'optimizer');
    try {
      opt.loadVelocities(velocities, path.join(dir, 'optimizer.json'));
    } finally {
      tf.dispose([...velocities.values()]);
    }
  }
  return state;
}

/** Assign a checkpoint's weights to the model, checking every name and shape first. */
export function loadCheckpointWeights(requested: string, model: HarDNet): void {
  const dir = resolveCheckpoint(requested);
  if (!dir)
    throw new CheckpointError(
      `checkpoint '${requested}' does not exist or is incomplete (no state.json/weights.json)`,
      requested,
    );
  const tensors = readCheckpointTensors(dir, 'weights');
  try {
    const missing = model.specs.filter((s) => !tensors.has(s.name)).map((s) => s.name);
    const known = new Set(model.specs.map((s) => s.name));
    const unexpected = [...tensors.keys()].filter((n) => !known.has(n));
    const misShaped = model.specs
      .filter((s) => tensors.has(s.name) && tensors.get(s.name)!.shape.join(',') !== s.tfShape.join(','))
      .map((s) => `${s.name}: file [${tensors.get(s.name)!.shape}], model [${s.tfShape}]`);
    if (missing.length + unexpected.length + misShaped.length > 0) {
      throw new CheckpointError(
        `${dir}: checkpoint does not match ${model.variant.name} with ${model.classes} classes: ` +
          `missing ${JSON.stringify(missing.slice(0, 10))}, unexpected ${JSON.stringify(unexpected.slice(0, 10))}, mis-shaped ${JSON.stringify(misShaped.slice(0, 10))}`,
      );
    }
    for (const s of model.specs)
      (s.trainable ? model.weights : model.buffers).get(s.name)!.assign(tensors.get(s.name)!);
  } finally {
    tf.dispose([...tensors.values()]);
  }
}

/** The complete checkpoint with the highest epoch number under `<root>` (`--resume auto`), if any. */
export function latestCheckpoint(root: string): string | undefined {
  if (!fs.existsSync(root)) return undefined;
  const epochs = [
    ...new Set(
      fs
        .readdirSync(root)
        .map((n) => /^(\d+)(\.old)?$/.exec(n)?.[1])
        .filter((n) => n !== undefined),
    ),
  ]
    .filter((n) => resolveCheckpoint(path.join(root, n)))
    .map(Number)
    .sort((a, b) => b - a);
  return epochs.length ? resolveCheckpoint(path.join(root, String(epochs[0]))) : undefined;
}
