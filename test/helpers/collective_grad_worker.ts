/**
 * One data-parallel SGD step of a small tf.js model (dense-relu-dense, softmax cross-entropy: no batch-dependent
 * layers): broadcast rank 0's initial weights, compute the gradient of the local shard's mean loss, allReduce
 * 'mean' one fused gradient buffer, apply SGD. Prints `RESULT {grad, weights, weightsSha}`.
 */
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
// tfjs-core's Node entry registers no gradients; the project's backend module does (see its comment)
import '../../worker/backend/register_gradients.js';
import { readWorkerEnv } from '../../shared/env.js';
import { createProcessGroup } from '../../worker/collectives/index.js';
import { value } from './collective_data.js';

const GLOBAL_BATCH = 8;
const IN = 8;
const HIDDEN = 16;
const CLASSES = 4;

async function main() {
  await tf.setBackend('cpu');
  const env = readWorkerEnv();
  const pg = await createProcessGroup(env, { timeoutMs: 60_000 });
  // every rank initialises differently on purpose: only the broadcast makes them start identical
  const shapes: [number, number][] = [
    [IN, HIDDEN],
    [1, HIDDEN],
    [HIDDEN, CLASSES],
    [1, CLASSES],
  ];
  const sizes = shapes.map(([a, b]) => a * b);
  const total = sizes.reduce((a, b) => a + b, 0);
  const flat = new Float32Array(total);
  for (let i = 0; i < total; i++) flat[i] = value(100 + env.rank, total, i);
  await pg.broadcast(flat, 0);
  let off = 0;
  const vars = shapes.map((shape, k) => {
    const v = tf.variable(tf.tensor2d(flat.slice(off, off + sizes[k]), shape));
    off += sizes[k];
    return v;
  });

  // this rank's shard of the global batch (equal shards, so the mean of shard means is the global mean)
  const per = GLOBAL_BATCH / env.worldSize;
  const xs = new Float32Array(per * IN);
  const labels = new Int32Array(per);
  for (let s = 0; s < per; s++) {
    const g = env.rank * per + s;
    for (let j = 0; j < IN; j++) xs[s * IN + j] = value(7, GLOBAL_BATCH * IN, g * IN + j);
    labels[s] = g % CLASSES;
  }
  const x = tf.tensor2d(xs, [per, IN]);
  const y = tf.oneHot(tf.tensor1d(labels, 'int32'), CLASSES);
  const { grads } = tf.variableGrads(() => {
    const h = tf.relu(tf.add(tf.matMul(x, vars[0]), vars[1]));
    const logits = tf.add(tf.matMul(h, vars[2]), vars[3]);
    return tf.losses.softmaxCrossEntropy(y, logits) as tf.Scalar;
  }, vars);
  // one fused gradient buffer (read outside tidy: see the wasm pitfall in the project notes)
  const fused = new Float32Array(total);
  off = 0;
  for (const v of vars) {
    const g = grads[v.name].dataSync();
    fused.set(g, off);
    off += g.length;
  }
  await pg.allReduce(fused, 'mean');
  const lr = 0.1;
  off = 0;
  const after = new Float32Array(total);
  vars.forEach((v, k) => {
    const g = tf.tensor2d(fused.slice(off, off + sizes[k]), shapes[k]);
    v.assign(tf.sub(v, tf.mul(g, lr)));
    after.set(v.dataSync(), off);
    off += sizes[k];
  });
  await pg.close();
  return {
    grad: Array.from(fused),
    weights: Array.from(after),
    weightsSha: createHash('sha256').update(new Uint8Array(after.buffer)).digest('hex'),
  };
}

main().then(
  (r) => process.stdout.write(`RESULT ${JSON.stringify(r)}\n`),
  (err) => {
    process.stdout.write(`ERROR ${JSON.stringify({ message: (err as Error).message })}\n`);
    process.exitCode = 1;
  },
);
