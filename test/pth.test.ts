// Reading torch .pth files: the official-format HarDNet fixtures and small files made by torch
// (test/fixtures/pth/make_fixtures.py) whose values torch itself wrote into expected.json.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { zipSync } from 'fflate';
import { parsePth, readPth, type StateDict, type TorchTensor } from '../worker/checkpoint/pth.js';
import {
  checkStateDict,
  torchConvToHWIO,
  torchDepthwiseToHWC1,
  torchLinearToInOut,
} from '../worker/checkpoint/state_dict.js';

// dist/test/pth.test.js -> repo root is two folders up.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES = join(ROOT, 'test', 'fixtures', 'pth');
const HARDNET = join(ROOT, 'test', 'fixtures', 'hardnet');
const fixture = (name: string) => join(FIXTURES, name);

interface Described {
  shape: number[];
  dtype: string;
  values: (number | string)[];
}
interface HardnetExpected {
  count: number;
  numel: number;
  sums: Record<string, number>;
  picks: Record<string, Described>;
  shapes: Record<string, number[]>;
}
type Expected = Record<string, Record<string, Described>> & {
  HarDNet39ds: HardnetExpected;
  HarDNet68ds: HardnetExpected;
};
let expected: Expected;
before(async () => {
  expected = JSON.parse(await readFile(fixture('expected.json'), 'utf8')) as Expected;
});

const OUTPUT_ARRAY: Record<string, new (...args: never[]) => unknown> = {
  float32: Float32Array,
  float64: Float32Array,
  float16: Float32Array,
  bfloat16: Float32Array,
  int64: BigInt64Array,
  int32: Int32Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

// Exact comparison: float values are what torch stored, rounded to float32 where the reader converts.
function assertTensor(name: string, got: TorchTensor | undefined, want: Described): void {
  assert.ok(got, `${name} missing`);
  assert.deepEqual(got.shape, want.shape, `${name} shape`);
  assert.equal(got.dtype, want.dtype, `${name} dtype`);
  assert.ok(got.data instanceof OUTPUT_ARRAY[want.dtype], `${name}: ${got.data.constructor.name} for ${want.dtype}`);
  const wantValues =
    want.dtype === 'int64'
      ? want.values.map((v) => BigInt(v))
      : got.data instanceof Float32Array
        ? want.values.map((v) => Math.fround(Number(v)))
        : want.values.map(Number);
  assert.deepEqual(Array.from(got.data as ArrayLike<number | bigint>), wantValues, `${name} values`);
}

function assertAll(sd: StateDict, want: Record<string, Described>): void {
  assert.deepEqual([...sd.keys()], Object.keys(want));
  for (const [name, w] of Object.entries(want)) assertTensor(name, sd.get(name), w);
}

function sum(data: TorchTensor['data']): number {
  let s = 0;
  for (const v of data) s += Number(v);
  return s;
}

for (const variant of ['HarDNet39ds', 'HarDNet68ds'] as const) {
  test(`${variant} official-format state_dict: every name, shape and tensor sum as torch reads them`, async () => {
    const sd = await readPth(join(HARDNET, variant, 'state_dict.pth'));
    const want = expected[variant];
    assert.equal(sd.size, want.count);
    assert.deepEqual([...sd.keys()], Object.keys(want.shapes), 'same names in the same order');
    let numel = 0;
    for (const [name, t] of sd) {
      assert.deepEqual(t.shape, want.shapes[name], `${name} shape`);
      assert.equal(
        t.data.length,
        t.shape.reduce((a, b) => a * b, 1),
        `${name} length`,
      );
      const s = sum(t.data);
      assert.ok(
        Math.abs(s - want.sums[name]) <= 1e-9 * Math.max(1, Math.abs(want.sums[name])) + 1e-9,
        `${name} sum ${s} vs ${want.sums[name]}`,
      );
      numel += t.data.length;
    }
    assert.equal(numel, want.numel);
    for (const [name, w] of Object.entries(want.picks)) assertTensor(name, sd.get(name), w);
  });
}

test('HarDNet39ds: names, shapes and counts from reference/hardnet.md', async () => {
  const sd = await readPth(join(HARDNET, 'HarDNet39ds', 'state_dict.pth'));
  assert.equal(sd.size, 446);
  assert.deepEqual(sd.get('base.0.conv.weight')?.shape, [24, 3, 3, 3]);
  assert.deepEqual(sd.get('base.14.3.weight')?.shape, [1000, 1024]);
  assert.deepEqual(sd.get('base.14.3.bias')?.shape, [1000]);
  const counter = sd.get('base.0.norm.num_batches_tracked');
  assert.equal(counter?.dtype, 'int64');
  assert.ok(counter?.data instanceof BigInt64Array);
  assert.deepEqual(counter?.shape, []);
  // The reference's exact counts: 3,488,228 parameters and 16,816 BN running statistics.
  let params = 0;
  let stats = 0;
  let counters = 0;
  for (const [name, t] of sd) {
    if (name.endsWith('num_batches_tracked')) counters++;
    else if (/running_(mean|var)$/.test(name)) stats += t.data.length;
    else params += t.data.length;
  }
  assert.equal(params, 3_488_228);
  assert.equal(stats, 16_816);
  assert.equal(counters, [...sd.keys()].filter((n) => n.endsWith('.norm.running_mean')).length);
});

test('dtypes: float64/float16/bfloat16 become float32, int64 BigInt, int32, uint8, bool, scalar, empty', async () => {
  assertAll(await readPth(fixture('dtypes.pth')), expected['dtypes.pth']);
});

test('views: transposed, storage offset, strided slice and permuted 4-d tensors copy out in C order', async () => {
  const sd = await readPth(fixture('views.pth'));
  assertAll(sd, expected['views.pth']);
  // The views shared one storage in the file; here they must not alias each other.
  (sd.get('base')!.data as Float32Array)[6] = -1;
  assert.equal((sd.get('slice')!.data as Float32Array)[1], 6);
});

test('legacy (pre-1.6, non-zip) format reads the same tensors', async () => {
  assertAll(await readPth(fixture('legacy_views.pth')), expected['views.pth']);
  // Its storages sit at arbitrary byte offsets: float64/int64 must still come out right.
  assertAll(await readPth(fixture('legacy_dtypes.pth')), expected['dtypes.pth']);
});

test('checkpoint dicts: tensors under state_dict, or under model as nn.Parameter', async () => {
  assertAll(await readPth(fixture('checkpoint_state_dict.pth')), expected.checkpoint);
  assertAll(await readPth(fixture('checkpoint_model_params.pth')), expected.checkpoint);
});

test('layout conversions agree with torch permute', async () => {
  const sd = await readPth(fixture('layouts.pth'));
  const same = (got: { shape: number[]; data: Float32Array }, name: string) => {
    assert.deepEqual(got.shape, sd.get(name)!.shape, `${name} shape`);
    assert.deepEqual(got.data, sd.get(name)!.data, `${name} values`);
  };
  same(torchConvToHWIO(sd.get('conv')!), 'conv_hwio');
  same(torchDepthwiseToHWC1(sd.get('dw')!), 'dw_hwc1');
  same(torchLinearToInOut(sd.get('fc')!), 'fc_in_out');
  assert.throws(
    () => torchDepthwiseToHWC1(sd.get('conv')!, 'base.2.dwconv.weight'),
    /base\.2\.dwconv\.weight: .*\[4,3,2,5\]/,
  );
  assert.throws(() => torchLinearToInOut(sd.get('conv')!, 'fc.weight'), /fc\.weight: expected a linear/);
});

describe('checkStateDict', () => {
  let sd: StateDict;
  let shapes: Map<string, number[]>;
  const file = 'HarDNet39ds/state_dict.pth';
  before(async () => {
    sd = await readPth(join(HARDNET, 'HarDNet39ds', 'state_dict.pth'));
    shapes = new Map([...sd].filter(([n]) => !n.endsWith('num_batches_tracked')).map(([n, t]) => [n, t.shape]));
  });

  test('accepts a match; num_batches_tracked in the file needs no expected entry', () => {
    checkStateDict(shapes, sd, file);
    checkStateDict(new Map([...sd].map(([n, t]) => [n, t.shape])), sd, file);
  });

  test('lists every missing, unexpected and mis-shaped entry with both shapes', () => {
    const model = new Map(shapes);
    model.delete('base.14.3.bias'); // in the file, not in the model
    model.delete('base.2.norm.running_var');
    model.set('base.15.weight', [10, 1024]); // in the model, not in the file
    model.set('base.0.conv.weight', [24, 3, 5, 5]);
    model.set('base.14.3.weight', [1024, 1000]);
    const counters = new Map(model)
      .set('base.0.norm.num_batches_tracked', [])
      .set('base.99.norm.num_batches_tracked', []);
    assert.throws(
      () => checkStateDict(counters, sd, file),
      (e: Error) => {
        const m = e.message;
        assert.match(
          m,
          /^HarDNet39ds\/state_dict\.pth: state_dict does not match the model: 2 missing, 2 unexpected, 2 mis-shaped/,
        );
        assert.match(m, /missing from the file \(2\):\n {2}base\.15\.weight\n {2}base\.99\.norm\.num_batches_tracked/);
        assert.match(m, /unexpected in the file \(2\):\n {2}base\.2\.norm\.running_var\n {2}base\.14\.3\.bias/);
        assert.match(m, /base\.0\.conv\.weight: file \[24,3,3,3\], model \[24,3,5,5\]/);
        assert.match(m, /base\.14\.3\.weight: file \[1000,1024\], model \[1024,1000\]/);
        return true;
      },
    );
  });
});

describe('bad files give errors naming the file', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pth-test-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('missing file', async () => {
    const f = join(dir, 'nope.pth');
    await assert.rejects(readPth(f), (e: Error) => e.message.startsWith(`${f}: cannot read`));
  });

  test('truncated zip', async () => {
    const buf = await readFile(fixture('views.pth'));
    assert.throws(
      () => parsePth(buf.subarray(0, buf.length >> 1), 'half.pth'),
      /^CheckpointError: half\.pth: corrupt or truncated zip archive/,
    );
  });

  test('truncated legacy file, and one cut inside its pickles', async () => {
    const buf = await readFile(fixture('legacy_views.pth'));
    assert.throws(
      () => parsePth(buf.subarray(0, buf.length - 10), 'cut.pth'),
      /^CheckpointError: cut\.pth: truncated: storage \d+ needs \d+ bytes/,
    );
    assert.throws(
      () => parsePth(buf.subarray(0, 300), 'cut300.pth'),
      /^CheckpointError: cut300\.pth: corrupt pickle at byte/,
    );
  });

  test('not a .pth at all', () => {
    assert.throws(
      () => parsePth(new TextEncoder().encode('hello world, not a checkpoint'), 'x.pth'),
      /^CheckpointError: x\.pth: .*bad magic number/,
    );
  });

  test('zip without data.pkl, corrupt data.pkl, storage shorter than its tensor', async () => {
    assert.throws(
      () => parsePth(zipSync({ 'a/readme.txt': new Uint8Array(3) }), 'other.zip'),
      /^CheckpointError: other\.zip: .*no <folder>\/data\.pkl/,
    );
    const good = await readFile(fixture('views.pth'));
    const { unzipSync } = await import('fflate');
    const entries = unzipSync(good);
    const pkl = Object.keys(entries).find((n) => n.endsWith('/data.pkl'))!;
    const garbled = { ...entries, [pkl]: entries[pkl].map((b, i) => (i > 40 && i < 60 ? 0xff : b)) };
    assert.throws(
      () => parsePth(zipSync(garbled, { level: 0 }), 'garbled.pth'),
      /^CheckpointError: garbled\.pth: corrupt pickle at byte \d+/,
    );
    const storage = Object.keys(entries).find((n) => n.endsWith('/data/0'))!;
    const short = { ...entries, [storage]: entries[storage].subarray(0, 40) };
    assert.throws(
      () => parsePth(zipSync(short, { level: 0 }), 'short.pth'),
      /^CheckpointError: short\.pth: views\/data\/0 is 40 bytes, but data\.pkl declares 24 float32 \(96 bytes\)/,
    );
  });

  test('unsupported content: a list, a dict without tensors, an int16 tensor', async () => {
    await assert.rejects(
      readPth(fixture('bad_list.pth')),
      /bad_list\.pth: top-level object is .*not a dict of tensors/,
    );
    await assert.rejects(
      readPth(fixture('bad_no_tensors.pth')),
      /bad_no_tensors\.pth: no tensors at the top level .*keys: epoch, arch/,
    );
    await assert.rejects(
      readPth(fixture('bad_int16.pth')),
      /bad_int16\.pth: unsupported storage type torch\.ShortStorage/,
    );
  });
});
