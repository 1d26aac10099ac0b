/**
 * `launch infer`: classify images the way PaddleClas's tools/infer does — resize the short side to 256, centre-crop
 * 224, ImageNet mean/std, softmax — and print the top-k classes of each image in its format.
 * On a checkpoint of this tool the defaults come from the run instead: architecture and class count from its
 * state.json, preprocessing from the VALID.transforms of the effective config saved beside its checkpoints (a
 * Fashion-MNIST model trained at 32x32 with its own mean/std is meaningless on 224x224 ImageNet-normalised input).
 * --model, --classes_num, --resize_short and --crop_size given on the command line win.
 */
import { UsageError } from '../../shared/errors.js';
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { HarDNet } from '../model/hardnet.js';
import { loadPretrained } from '../checkpoint/pretrained.js';
import { selectBackend, type BackendName } from '../backend/select.js';
import { buildTransforms, inferPreprocess, type PaddleTransformOp } from '../data/transforms.js';
import { readState, resolveCheckpoint, type TrainState } from '../checkpoint/checkpoint.js';
import { loadConfig } from '../../shared/config.js';
import { positiveInt } from './args.js';

export interface InferOptions {
  image_file?: string;
  model?: string;
  pretrained_model?: string;
  classes_num?: string;
  resize_short?: string;
  crop_size?: string;
  top_k: string;
  backend: string;
}

/** What a checkpoint of this tool tells about its run: state.json, and the VALID transforms of its saved config. */
function runOf(
  weights: string,
  log: (m: string) => void,
): { state?: TrainState; valid?: { ops: PaddleTransformOp[]; file: string } } {
  const dir = resolveCheckpoint(weights);
  if (!dir) return {};
  const state = readState(dir);
  // checkpoints live in <model_save_dir>/<model>/<epoch or best_model>/, the effective config in <model_save_dir>/<model>/
  const file = path.join(path.dirname(path.resolve(dir)), 'config.yaml');
  if (!fs.existsSync(file)) return { state };
  try {
    const ops = loadConfig(file, [], { mode: 'valid', warn: () => {} }).VALID?.transforms;
    return { state, valid: ops && { ops, file } };
  } catch (e) {
    log(`infer: cannot use the preprocessing of ${file} (${(e as Error).message}); using PaddleClas's infer defaults`);
    return { state };
  }
}

const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff', '.gif']);

/** The file itself, or the images of a folder (recursively, sorted so output order is stable). */
export function listImages(target: string): string[] {
  if (!fs.existsSync(target)) throw new UsageError(`infer: image file or folder '${target}' does not exist`);
  if (!fs.statSync(target).isDirectory()) return [target];
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (IMAGE_EXTENSIONS.has(path.extname(e.name).toLowerCase())) out.push(p);
    }
  };
  walk(target);
  if (out.length === 0)
    throw new UsageError(`infer: folder '${target}' holds no image files (${[...IMAGE_EXTENSIONS].join(' ')})`);
  return out;
}

/** Indices and values of the k largest probabilities, largest first (ties: lower class id first). */
export function topK(probs: Float32Array, k: number): { id: number; p: number }[] {
  return Array.from(probs, (p, id) => ({ id, p }))
    .sort((a, b) => b.p - a.p || a.id - b.id)
    .slice(0, k);
}

export async function infer(o: InferOptions, out: (line: string) => void = console.log): Promise<number> {
  if (!o.image_file) throw new UsageError('infer: -i/--image_file is required (an image file or a folder)');
  if (!o.pretrained_model)
    throw new UsageError('infer: --pretrained_model is required (an official .pth or a checkpoint of this tool)');
  const log = (m: string) => process.stderr.write(`${m}\n`);
  const run = runOf(o.pretrained_model, log);
  const modelName = o.model ?? run.state?.model;
  if (!modelName)
    throw new UsageError(
      'infer: --model is required (e.g. --model HarDNet68) unless --pretrained_model is a checkpoint of this tool',
    );
  const classes =
    o.classes_num !== undefined ? positiveInt(o.classes_num, '--classes_num') : (run.state?.classesNum ?? 1000);
  const k = Math.min(positiveInt(o.top_k, '--top_k'), classes);
  const files = listImages(o.image_file);
  const explicitSize = o.resize_short !== undefined || o.crop_size !== undefined;
  let preprocess: (file: string) => Promise<{ data: Float32Array; shape: [number, number, number] }>;
  if (run.valid && !explicitSize) {
    log(`infer: preprocessing as VALID.transforms of ${run.valid.file}`);
    const fn = buildTransforms(run.valid.ops, { channelsLast: true });
    preprocess = (file) => fn({ path: file });
  } else {
    const resizeShort = positiveInt(o.resize_short ?? '256', '--resize_short');
    const crop = positiveInt(o.crop_size ?? '224', '--crop_size');
    preprocess = (file) => inferPreprocess(file, { resizeShort, crop });
  }

  // a GPU is visible unless CUDA_VISIBLE_DEVICES hides them all ('' or -1, CUDA's spellings for none)
  const visible = process.env.CUDA_VISIBLE_DEVICES;
  await selectBackend(o.backend as BackendName, {
    gpuAssigned: visible !== undefined && visible !== '' && visible !== '-1',
    visibleDevices: visible,
    log,
  });
  const model = new HarDNet(modelName, classes);
  try {
    await loadPretrained(model, o.pretrained_model);
    for (const file of files) {
      const img = await preprocess(file);
      const probs = tf.tidy(() => {
        const x = tf.tensor4d(img.data, [1, ...img.shape]);
        return tf.softmax(model.forward(x, { training: false }));
      });
      const p = (await probs.data()) as Float32Array;
      probs.dispose();
      out(`Current image file: ${file}`);
      topK(p, k).forEach((t, i) => {
        out(`\ttop${i + 1}, class id: ${t.id}, probability: ${t.p.toFixed(4)}`);
      });
    }
  } finally {
    model.dispose();
  }
  return 0;
}
