import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { HarDNet } from '../worker/model/hardnet.js';
import { loadTorchWeights } from '../worker/checkpoint/torch_weights.js';
import { saveCheckpoint } from '../worker/checkpoint/checkpoint.js';
import { fixture, maxAbsDiff } from './helpers/hardnet_fixture.js';
import { useBackend } from './helpers/backend.js';

before(async () => {
  await useBackend('wasm');
});

/** What a browser does with `tf.loadLayersModel(url)`: read model.json, fetch the weight files it names. */
async function loadLayersModelFromDir(dir: string): Promise<tfl.LayersModel> {
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const group = json.weightsManifest[0];
  const bin = fs.readFileSync(path.join(dir, group.paths[0]));
  return tfl.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: group.weights,
      weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength),
    }),
  );
}

for (const name of ['HarDNet39ds', 'HarDNet68ds']) {
  test(`${name}: a checkpoint's model.json loads in stock TensorFlow.js and predicts what the model does`, async () => {
    const model = new HarDNet(name, 1000);
    await loadTorchWeights(model, fixture(name).pth);
    const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'layers-')), 'ckpt');
    await saveCheckpoint(dir, model, undefined, {
      epoch: 0,
      iteration: 0,
      bestTop1: 0,
      bestEpoch: -1,
      model: name,
      classesNum: 1000,
    });
    const layers = await loadLayersModelFromDir(dir);
    const input = fixture(name).io.get('input_nhwc');
    const x = tf.tensor4d(input.data, input.shape as [number, number, number, number]);
    const ours = model.forward(x, { training: false });
    const theirs = layers.predict(x) as tf.Tensor;
    const d = maxAbsDiff(await ours.data(), await theirs.data());
    assert.ok(d < 1e-4, `Layers model differs by ${d}`);
    // and both agree with the official PyTorch logits
    assert.ok(maxAbsDiff(await theirs.data(), fixture(name).io.get('logits').data) < 5e-4);
    tf.dispose([x, ours, theirs]);
    layers.dispose();
    model.dispose();
  });
}
