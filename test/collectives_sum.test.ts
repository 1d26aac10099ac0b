/**
 * The ring's WebAssembly SIMD sum gives exactly the bits of the plain float32 loop (acc + mine, and
 * (acc + mine) / d for a mean), whatever the received buffer's alignment, length tail or block boundary.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addChunk, addInto } from '../worker/collectives/sum.js';
import { fill } from './helpers/collective_data.js';

/** Values with every kind of edge: denormals, signed zeros, infinities, huge and tiny magnitudes. */
function operands(n: number): [Float32Array, Float32Array] {
  const a = new Float32Array(n);
  const b = new Float32Array(n);
  fill(a, 0);
  fill(b, 1);
  const edges = [1e-45, -1e-45, 0, -0, Infinity, -Infinity, 3.4e38, -3.4e38, 1e-38, 1.5, -2.25];
  for (let i = 0; i < n; i += 7) {
    a[i] = edges[i % edges.length];
    b[(i * 3) % n] = edges[(i + 3) % edges.length];
  }
  return [a, b];
}

function reference(a: Float32Array, b: Float32Array, d: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) {
    out[i] = a[i] + b[i];
    if (d !== 1) out[i] /= d;
  }
  return out;
}

const bits = (x: Float32Array) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);

for (const n of [0, 1, 15, 16, 17, 1001, (1 << 16) - 1, (1 << 16) + 19, 3 * (1 << 16) + 5]) {
  test(`${n} floats: sum and mean bit-identical to the scalar loop at byte offsets 0..3`, () => {
    const [a, b] = operands(n);
    for (const offset of [0, 1, 2, 3]) {
      for (const d of [1, 3, 4]) {
        // a received message: float32 bytes at an arbitrary offset inside a larger buffer
        const wire = Buffer.alloc(n * 4 + 8);
        const acc = wire.subarray(offset, offset + n * 4);
        acc.set(bits(a));
        const keep = new Float32Array(n).fill(7);
        addChunk(acc, b, d, d === 1 ? undefined : keep);
        const want = reference(a, b, d);
        assert.ok(acc.equals(bits(want)), `n=${n} offset=${offset} d=${d}: received buffer differs`);
        if (d !== 1) assert.ok(bits(keep).equals(bits(want)), `n=${n} d=${d}: the owner's copy differs`);
        assert.equal(
          wire.subarray(0, offset).every((x) => x === 0) && wire.subarray(offset + n * 4).every((x) => x === 0),
          true,
          'wrote outside the chunk',
        );
      }
    }
  });
}

test('the owner may keep the result in the array it adds (alsoInto === mine)', () => {
  const [a, b] = operands(200_003);
  const acc = Buffer.from(bits(a));
  const mine = b.slice();
  addChunk(acc, mine, 2, mine);
  const want = reference(a, b, 2);
  assert.ok(bits(mine).equals(bits(want)));
  assert.ok(acc.equals(bits(want)));
});

test('addInto and length errors', () => {
  const [a, b] = operands(33);
  const want = reference(a, b, 1);
  addInto(a, b);
  assert.ok(bits(a).equals(bits(want)));
  assert.throws(() => addInto(a, b.subarray(1)), /lengths differ/);
  assert.throws(() => addChunk(Buffer.alloc(8), b), /8 bytes for 33 floats/);
});
