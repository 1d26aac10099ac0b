/** Reads the official-PyTorch ground truth in test/fixtures/hardnet (json index + raw float32 blob). */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const FIXTURES = path.resolve(REPO_ROOT, 'test/fixtures/hardnet');

export interface FixtureTensor {
  shape: number[];
  data: Float32Array;
}

export class FixtureFile {
  private index: Record<string, { shape: number[]; offset: number; length: number }>;
  private blob: Buffer;
  constructor(base: string) {
    this.index = JSON.parse(fs.readFileSync(`${base}.json`, 'utf8'));
    this.blob = fs.readFileSync(`${base}.bin`);
  }
  names(): string[] {
    return Object.keys(this.index);
  }
  get(name: string): FixtureTensor {
    const e = this.index[name];
    if (!e) throw new Error(`fixture has no tensor '${name}'`);
    const copy = this.blob.buffer.slice(this.blob.byteOffset + e.offset, this.blob.byteOffset + e.offset + e.length);
    return { shape: e.shape, data: new Float32Array(copy) };
  }
}

export function fixture(model: string) {
  const dir = path.join(FIXTURES, model);
  return {
    pth: path.join(dir, 'state_dict.pth'),
    io: new FixtureFile(path.join(dir, 's64', 'io')),
    grad: new FixtureFile(path.join(dir, 's64', 'grad')),
    meta: JSON.parse(fs.readFileSync(path.join(dir, 's64', 'meta.json'), 'utf8')),
  };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function relL2(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (a.length !== ref.length) throw new Error(`length ${a.length} != ${ref.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return Math.sqrt(num / den);
}
