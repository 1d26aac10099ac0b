/**
 * Importing official PyTorch weights into a HarDNet: every name and shape is checked against the layer plan
 * before anything is assigned, so a wrong file changes nothing and says exactly what does not match.
 */
import { CheckpointError } from '../../shared/errors.js';
import * as tf from '@tensorflow/tfjs-core';
import { readPth, type StateDict } from './pth.js';
import {
  checkStateDict,
  torchConvToHWIO,
  torchDepthwiseToHWC1,
  torchLinearToInOut,
  type FloatTensor,
} from './state_dict.js';
import type { HarDNet } from '../model/hardnet.js';
import type { ParamSpec } from '../model/plan.js';

/** The names and PyTorch shapes the model expects from a state_dict. */
export function expectedTorchShapes(model: HarDNet): Map<string, number[]> {
  return new Map(model.specs.map((s) => [s.name, s.torchShape]));
}

function toTfLayout(s: ParamSpec, sd: StateDict): FloatTensor {
  const t = sd.get(s.name)!;
  switch (s.kind) {
    case 'conv':
      return torchConvToHWIO(t, s.name);
    case 'depthwise':
      return torchDepthwiseToHWC1(t, s.name);
    case 'fc_weight':
      return torchLinearToInOut(t, s.name);
    default:
      if (!(t.data instanceof Float32Array))
        throw new CheckpointError(`${s.name}: expected float data, got ${t.dtype}`);
      return { shape: t.shape, data: t.data };
  }
}

/** Assign a PyTorch state_dict (official names and layouts); `file` names the source in errors. */
export function assignTorchStateDict(model: HarDNet, sd: StateDict, file: string): void {
  checkStateDict(expectedTorchShapes(model), sd, file);
  // convert everything first: a conversion error must not leave the model half-assigned
  const converted = model.specs.map((s) => [s, toTfLayout(s, sd)] as const);
  for (const [s, t] of converted) {
    const v = (s.trainable ? model.weights : model.buffers).get(s.name)!;
    tf.tidy(() => v.assign(tf.tensor(t.data, s.tfShape)));
  }
}

/** Load an official `.pth` (torch.save zip format) into the model. */
export async function loadTorchWeights(model: HarDNet, file: string): Promise<void> {
  assignTorchStateDict(model, await readPth(file), file);
}
