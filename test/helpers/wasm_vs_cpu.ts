/** Comparing the project's wasm kernels with tfjs-backend-cpu's reference implementations. */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

/** Runs fn on wasm and on cpu (same input values) and returns both results' values, [wasm, cpu]. */
export function onBoth(fn: () => tf.Tensor | tf.Tensor[]): [Float32Array[], Float32Array[]] {
  const results: Float32Array[][] = [];
  for (const name of ['wasm', 'cpu']) {
    tf.setBackend(name);
    const out = tf.tidy(fn);
    const list = Array.isArray(out) ? out : [out];
    results.push(list.map((t) => Float32Array.from(t.dataSync()))); // outside tidy: dataSync in tidy is slow on wasm
    tf.dispose(list);
  }
  tf.setBackend('wasm');
  return results as [Float32Array[], Float32Array[]];
}

/** max |actual - expected| within tol relative to the largest reference value (a reference of zeros tests nothing). */
export function assertClose(actual: Float32Array, expected: Float32Array, what: string, tol = 1e-5): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let maxDiff = 0,
    scale = 0;
  for (let i = 0; i < expected.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  assert.ok(scale > 0, `${what}: reference is all zeros, the case tests nothing`);
  assert.ok(maxDiff <= tol * scale + 1e-6, `${what}: max |wasm - cpu| = ${maxDiff} (max |cpu| = ${scale})`);
}
