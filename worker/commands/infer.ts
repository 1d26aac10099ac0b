/**
 * `launch infer`: classify images the way PaddleClas's tools/infer does — resize the short side to 256, centre-crop
 * 224, ImageNet mean/std, softmax — and print the top-k classes of each image in its format.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { HarDNet } from '../model/hardnet.js';
import { loadPretrained } from '../model/pretrained.js';
import { selectBackend, type BackendName } from '../backend/select.js';
import { inferPreprocess } from '../data/transforms.js';
import { positiveInt } from './args.js';

export interface InferOptions {
  image_file?: string; model?: string; pretrained_model?: string; classes_num: string;
  resize_short: string; crop_size: string; top_k: string; backend: string;
}

const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff', '.gif']);

/** The file itself, or the images of a folder (recursively, sorted so output order is stable). */
export function listImages(target: string): string[] {
  if (!fs.existsSync(target)) throw new Error(`infer: image file or folder '${target}' does not exist`);
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
  if (out.length === 0) throw new Error(`infer: folder '${target}' holds no image files (${[...IMAGE_EXTENSIONS].join(' ')})`);
  return out;
}

/** Indices and values of the k largest probabilities, largest first (ties: lower class id first). */
export function topK(probs: Float32Array, k: number): { id: number; p: number }[] {
  return Array.from(probs, (p, id) => ({ id, p })).sort((a, b) => b.p - a.p || a.id - b.id).slice(0, k);
}

export async function infer(o: InferOptions, out: (line: string) => void = console.log): Promise<number> {
  if (!o.image_file) throw new Error('infer: -i/--image_file is required (an image file or a folder)');
  if (!o.model) throw new Error('infer: --model is required (e.g. --model HarDNet68)');
  if (!o.pretrained_model) throw new Error('infer: --pretrained_model is required (an official .pth or a checkpoint of this tool)');
  const classes = positiveInt(o.classes_num, '--classes_num');
  const resizeShort = positiveInt(o.resize_short, '--resize_short');
  const crop = positiveInt(o.crop_size, '--crop_size');
  const k = Math.min(positiveInt(o.top_k, '--top_k'), classes);
  const files = listImages(o.image_file);

  await selectBackend(o.backend as BackendName, { gpuAssigned: Boolean(process.env.CUDA_VISIBLE_DEVICES), log: (m) => process.stderr.write(`${m}\n`) });
  const model = new HarDNet(o.model, classes);
  try {
    await loadPretrained(model, o.pretrained_model);
    for (const file of files) {
      const img = await inferPreprocess(file, { resizeShort, crop });
      const probs = tf.tidy(() => {
        const x = tf.tensor4d(img.data, [1, ...img.shape]);
        return tf.softmax(model.forward(x, { training: false }));
      });
      const p = (await probs.data()) as Float32Array;
      probs.dispose();
      out(`Current image file: ${file}`);
      topK(p, k).forEach((t, i) => out(`\ttop${i + 1}, class id: ${t.id}, probability: ${t.p.toFixed(4)}`));
    }
  } finally {
    model.dispose();
  }
  return 0;
}
