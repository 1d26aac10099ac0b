/**
 * Checkpoints readable by stock TensorFlow.js: `model.json` in the Layers format (tf.loadLayersModel), whose
 * weightsManifest points at the checkpoint's own `weights.bin`, so the weights are stored once.
 *
 * The topology is HarDNet rebuilt from the same layer plan with tfjs-layers: explicit ZeroPadding2D + 'valid'
 * convolutions (TensorFlow's 'same' pads asymmetrically on stride 2), ReLU(max_value=6), BatchNormalization with
 * epsilon 1e-5. Zero padding before the stem max-pool is exact because it follows a ReLU6 (>= 0). Layer names are
 * the official module paths, so a weight `base.3.layers.0.conv.weight` is `base.3.layers.0.conv/kernel` there.
 */
import * as tfl from '@tensorflow/tfjs-layers';
import type { HarDNet } from './hardnet.js';
import type { ConvLayer, DWConvLayer, Entry } from './plan.js';

type SymbolicTensor = tfl.SymbolicTensor;

/** Our state_dict name -> the Layers weight name. */
export function layersWeightName(name: string): string {
  const rules: [RegExp, string][] = [
    [/\.conv\.weight$/, '.conv/kernel'],
    [/\.dwconv\.weight$/, '.dwconv/depthwise_kernel'],
    [/\.norm\.weight$/, '.norm/gamma'],
    [/\.norm\.bias$/, '.norm/beta'],
    [/\.norm\.running_mean$/, '.norm/moving_mean'],
    [/\.norm\.running_var$/, '.norm/moving_variance'],
    [/\.3\.weight$/, '.3/kernel'],
    [/\.3\.bias$/, '.3/bias'],
  ];
  for (const [re, to] of rules) if (re.test(name)) return name.replace(re, to);
  throw new RangeError(`no Layers weight name for '${name}'`);
}

function pad(x: SymbolicTensor, p: number, name: string): SymbolicTensor {
  return p > 0 ? (tfl.layers.zeroPadding2d({ padding: p, name }).apply(x) as SymbolicTensor) : x;
}

function convLayer(l: ConvLayer, x: SymbolicTensor): SymbolicTensor {
  const p = Math.floor(l.k / 2);
  let y = pad(x, p, `${l.prefix}.pad`);
  y = tfl.layers
    .conv2d({
      filters: l.cout,
      kernelSize: l.k,
      strides: l.stride,
      padding: 'valid',
      useBias: false,
      name: `${l.prefix}.conv`,
    })
    .apply(y) as SymbolicTensor;
  y = tfl.layers
    .batchNormalization({ epsilon: 1e-5, momentum: 0.9, name: `${l.prefix}.norm` })
    .apply(y) as SymbolicTensor;
  return tfl.layers.reLU({ maxValue: 6, name: `${l.prefix}.relu` }).apply(y) as SymbolicTensor;
}

function dwConvLayer(l: DWConvLayer, x: SymbolicTensor): SymbolicTensor {
  let y = pad(x, 1, `${l.prefix}.pad`);
  y = tfl.layers
    .depthwiseConv2d({
      kernelSize: 3,
      strides: l.stride,
      padding: 'valid',
      depthMultiplier: 1,
      useBias: false,
      name: `${l.prefix}.dwconv`,
    })
    .apply(y) as SymbolicTensor;
  return tfl.layers
    .batchNormalization({ epsilon: 1e-5, momentum: 0.9, name: `${l.prefix}.norm` })
    .apply(y) as SymbolicTensor;
}

function concat(xs: SymbolicTensor[], name: string): SymbolicTensor {
  return xs.length > 1 ? (tfl.layers.concatenate({ axis: -1, name }).apply(xs) as SymbolicTensor) : xs[0];
}

/** The Layers model of a plan (weights left at their initial values). */
export function buildLayersModel(plan: Entry[], name: string): tfl.LayersModel {
  const input = tfl.input({ shape: [null, null, 3], name: 'image' });
  let x = input;
  let output: SymbolicTensor | undefined;
  let poolIndex = 0;
  for (const e of plan) {
    switch (e.kind) {
      case 'conv':
        x = convLayer(e, x);
        break;
      case 'dwconv':
        x = dwConvLayer(e, x);
        break;
      case 'maxpool': {
        const n = `pool${poolIndex++}`;
        x = tfl.layers
          .maxPooling2d({ poolSize: e.k, strides: e.stride, padding: 'valid', name: n })
          .apply(pad(x, e.pad, `${n}.pad`)) as SymbolicTensor;
        break;
      }
      case 'dropout':
        x = tfl.layers.dropout({ rate: e.rate, name: `dropout${poolIndex++}` }).apply(x) as SymbolicTensor;
        break;
      case 'block': {
        const outs = [x];
        e.layers.forEach((l, i) => {
          const inp = concat(
            e.links[i].map((j) => outs[j]),
            `${l.prefix}.concat`,
          );
          outs.push(l.kind === 'comb' ? dwConvLayer(l.dw, convLayer(l.conv, inp)) : convLayer(l, inp));
        });
        x = concat(
          e.outputs.map((j) => outs[j]),
          `${e.prefix}.concat`,
        );
        break;
      }
      case 'head': {
        let h = tfl.layers.globalAveragePooling2d({ name: `${e.prefix}.pool` }).apply(x) as SymbolicTensor;
        h = tfl.layers.dropout({ rate: e.dropout, name: `${e.prefix}.dropout` }).apply(h) as SymbolicTensor;
        output = tfl.layers.dense({ units: e.classes, name: `${e.prefix}.3` }).apply(h) as SymbolicTensor;
        break;
      }
    }
  }
  return tfl.model({ inputs: input, outputs: output!, name });
}

const topologies = new Map<string, object>();

/**
 * The model.json of a checkpoint whose weights.bin holds `specs` (our names, in file order): the Layers topology
 * plus a weightsManifest renaming each entry to its Layers name.
 */
export function layersModelJson(
  model: HarDNet,
  specs: { name: string; shape: number[]; dtype: string }[],
  binFile: string,
): object {
  const key = `${model.variant.name}/${model.classes}`;
  let topology = topologies.get(key);
  if (!topology) {
    const m = buildLayersModel(model.plan, model.variant.name);
    topology = m.toJSON(null, false) as object;
    m.dispose();
    topologies.set(key, topology);
  }
  return {
    format: 'layers-model',
    generatedBy: 'hardnet-launch',
    convertedBy: null,
    modelTopology: topology,
    weightsManifest: [{ paths: [binFile], weights: specs.map((s) => ({ ...s, name: layersWeightName(s.name) })) }],
  };
}
