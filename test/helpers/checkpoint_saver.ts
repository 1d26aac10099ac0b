/**
 * Test helper: `checkpoint_saver.js DIR` saves a HarDNet checkpoint to DIR over and over (printing "saved" after
 * the first), to be SIGKILLed mid-save; `checkpoint_saver.js DIR --check` loads DIR and checks it is whole.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { HarDNet } from '../../worker/model/hardnet.js';
import { Momentum } from '../../worker/optim/momentum.js';
import { loadCheckpoint, saveCheckpoint } from '../../worker/checkpoint/checkpoint.js';

const [dir, mode] = process.argv.slice(2);
await tf.setBackend('cpu');
const model = new HarDNet('HarDNet68', 1000, 0); // ~70 MB of weights: a save takes long enough to be hit
if (mode === '--check') {
  const opt = new Momentum(model.weights, { momentum: 0.9, l2Decay: 0 });
  const state = loadCheckpoint(dir, model, opt);
  // every saved epoch wrote weights equal to the epoch number (see below)
  const w = await model.weights.get('base.0.conv.weight')!.data();
  if (w[0] !== state.epoch) throw new Error(`weights of epoch ${w[0]} with the state of epoch ${state.epoch}`);
  console.log(`checkpoint ok: epoch ${state.epoch}`);
} else {
  for (let epoch = 0; ; epoch++) {
    model.weights.get('base.0.conv.weight')!.assign(tf.fill([3, 3, 3, 32], epoch));
    await saveCheckpoint(dir, model, undefined, {
      epoch,
      iteration: epoch,
      bestTop1: 0,
      bestEpoch: -1,
      model: 'HarDNet68',
      classesNum: 1000,
    });
    if (epoch === 0) console.log('saved');
  }
}
