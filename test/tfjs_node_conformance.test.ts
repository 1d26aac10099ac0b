/**
 * Every kernel that a training step, eval and infer dispatch, for all four variants, is one that
 * @tensorflow/tfjs-node 4.22 registers, its wrapper accepts the attributes (it throws on, e.g., numeric padding),
 * and the TensorFlow op it makes of them is one TensorFlow 2.9 accepts.
 *
 * tfjs-node's real kernel JavaScript (test/fixtures/tfjs-node, vendored from the npm package) runs beside the cpu
 * backend with a recording binding (helpers/tfjs_node.ts) instead of libtensorflow, which CI cannot download; the
 * cpu backend takes the same generic path the 'tensorflow' backend does (no wasm-only kernels). The recorded ops
 * are checked against TensorFlow's op registry as helpers/tf_ops.ts writes it down. The convolutions' values are
 * zeros of the right shape here (the cpu backend's JavaScript convolution gradients would take minutes; the
 * fixture tests in model.test.ts check the values, on cpu too): which kernels run does not depend on them.
 *
 * Chosen over a hand-written table of what tfjs-node accepts because the wrappers are the ground truth: their
 * checks (e.g. "TF Backend supports only 'valid' and 'same' padding") and their translation into TensorFlow
 * attributes run as shipped, and a new kernel the model starts to use is caught without anyone updating a table.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from './helpers/backend.js';
import { recordTfjsNode, type Dispatch } from './helpers/tfjs_node.js';
import { tfOpProblems } from './helpers/tf_ops.js';
import { HarDNet } from '../worker/model/hardnet.js';
import { computeGradients, crossEntropy } from '../worker/train/step.js';
import { FlatParameters } from '../worker/model/flat_params.js';
import { createMomentum } from '../worker/optim/momentum.js';
import { topkCorrect } from '../worker/train/metrics.js';

before(async () => {
  await useBackend('cpu');
});

const SIZE = 32;
const CLASSES = 10;

/** What train.ts, evaluate.ts and infer.ts do with a model, op for op, on two small images. */
async function trainEvalInfer(model: HarDNet): Promise<void> {
  const parameters = new FlatParameters(model.weights);
  const opt = createMomentum(parameters, { momentum: 0.9, l2Decay: 1e-4 });
  const x = tf.randomNormal([2, SIZE, SIZE, 3], 0, 1, 'float32', 5) as tf.Tensor4D;
  const labels = Int32Array.from([1, 7]);
  const y = tf.tensor1d(labels, 'int32');
  const yB = tf.tensor1d([3, 4], 'int32');
  // a plain step (label smoothing, the reproduction's temperature), then one with mixup and ghost batch norm
  for (const extra of [{}, { mix: { labelsB: yB, lam: 0.7 }, bnGroupSize: 1 }]) {
    const r = computeGradients(model, x, y, { labelSmoothing: 0.1, seed: 1, temperature: 0.5, ...extra });
    await r.loss.data();
    parameters.packGradients(r.grads);
    model.updateBatchNormStats(r.batchStats);
    await topkCorrect(r.logits, labels, 5);
    opt.step(0.1);
    tf.dispose([r.loss, r.logits, ...r.grads.values()]);
  }
  // a checkpoint's optimizer state out and back in
  const velocities = opt.velocityTensors();
  opt.loadVelocities(velocities);
  tf.dispose([...velocities.values()]);
  // rank 0's weights broadcast (train.ts): packed on the host and assigned back
  parameters.packWeights();
  parameters.unpackWeights();
  // eval (evaluate.ts) and infer (commands/infer.ts)
  const logits = model.forward(x, { training: false });
  const scaled = tf.div(logits, 0.5) as tf.Tensor2D;
  const loss = crossEntropy(scaled, y);
  await loss.data();
  await topkCorrect(logits, labels, 5);
  const probs = tf.tidy(() => tf.softmax(model.forward(tf.slice(x, 0, 1) as tf.Tensor4D, { training: false })));
  await probs.data();
  tf.dispose([x, y, yB, logits, scaled, loss, probs]);
}

function problemsOf(dispatches: Dispatch[]): string[] {
  const seen = new Set<string>();
  for (const d of dispatches) {
    if (d.error) seen.add(`kernel ${d.kernel}: ${d.error}`);
    for (const op of d.ops) for (const p of tfOpProblems(op)) seen.add(`kernel ${d.kernel} -> ${p}`);
  }
  return [...seen];
}

for (const name of ['HarDNet39ds', 'HarDNet68', 'HarDNet68ds', 'HarDNet85']) {
  test(`${name}: every kernel of a training step, eval and infer is one tfjs-node 4.22 runs and TensorFlow 2.9 accepts`, async () => {
    const model = new HarDNet(name, CLASSES, 1);
    const { dispatches } = await recordTfjsNode(() => trainEvalInfer(model), { shapeOnlyConvolutions: true });
    model.dispose();
    const problems = problemsOf(dispatches);
    assert.deepEqual(problems, [], `${problems.length} problems:\n${problems.join('\n')}`);
    // the record is not vacuous: the convolutions, their gradients and (68/85) the max-pool went through tfjs-node
    const ops = new Set(dispatches.flatMap((d) => d.ops.map((o) => o.op)));
    const expected = [
      'Conv2D',
      'Conv2DBackpropInput',
      'Conv2DBackpropFilter',
      'FusedBatchNorm',
      'Softmax',
      'TopKV2',
      'ConcatV2',
      'SplitV',
      ...(name.endsWith('ds')
        ? ['DepthwiseConv2dNative', 'DepthwiseConv2dNativeBackpropInput', 'DepthwiseConv2dNativeBackpropFilter']
        : ['MaxPool', 'MaxPoolGrad']),
    ];
    for (const op of expected)
      assert.ok(ops.has(op), `no ${op} was recorded (recorded: ${[...ops].sort().join(', ')})`);
    // stride 2 is an explicit pad then 'valid'; stride 1 'same' (1x1: 'valid'); never numeric or asymmetric
    const paddings = new Set(
      dispatches.flatMap((d) => d.ops.flatMap((o) => o.attrs.filter((a) => a.name === 'padding').map((a) => a.value))),
    );
    assert.deepEqual([...paddings].sort(), ['SAME', 'VALID']);
  });
}

test('a numeric padding, as the model used before, is refused by tfjs-node: the check can fail', async () => {
  const x = tf.ones([1, 8, 8, 2]) as tf.Tensor4D;
  const w = tf.ones([3, 3, 2, 2]) as tf.Tensor4D;
  const { dispatches } = await recordTfjsNode(() => {
    const g = tf.grad((a: tf.Tensor) => tf.sum(tf.maxPool(tf.conv2d(a as tf.Tensor4D, w, 1, 1), 3, 2, 1)))(x);
    g.dispose();
  });
  const problems = problemsOf(dispatches);
  for (const kernel of ['Conv2DBackpropInput', 'MaxPool', 'MaxPoolGrad']) {
    assert.ok(
      problems.some((p) => p.startsWith(`kernel ${kernel}: TF Backend supports only 'valid' and 'same' padding`)),
      `${kernel}: ${problems.join('\n')}`,
    );
  }
  tf.dispose([x, w]);
});
