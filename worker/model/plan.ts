/**
 * The layer plan of a HarDNet: the official `base` ModuleList, entry by entry, with parameter names and shapes.
 * Pure data (no TensorFlow), so that summary counts, .pth import and the tf model all read one description.
 *
 * Indices follow the official code: `base.<i>` counts every entry, pools and dropouts too, so the names here are
 * exactly the official state_dict names.
 */
import type { HarDNetVariant } from './variants.js';

/** conv k x k, padding k//2, no bias -> BatchNorm -> ReLU6 */
export interface ConvLayer {
  kind: 'conv';
  prefix: string;
  cin: number;
  cout: number;
  k: number;
  stride: number;
}
/** depthwise 3x3, padding 1, no bias -> BatchNorm (no activation) */
export interface DWConvLayer {
  kind: 'dwconv';
  prefix: string;
  c: number;
  stride: number;
}
/** ds blocks: ConvLayer 1x1 -> DWConvLayer stride 1 */
export interface CombConvLayer {
  kind: 'comb';
  prefix: string;
  conv: ConvLayer;
  dw: DWConvLayer;
}
export interface MaxPool {
  kind: 'maxpool';
  k: number;
  stride: number;
  pad: number;
}
export interface Dropout {
  kind: 'dropout';
  rate: number;
}
export interface HarDBlock {
  kind: 'block';
  prefix: string;
  cin: number;
  /** layer L (1-based) reads links[L-1]: indices into [block input, layer 1, layer 2, ...], most recent first */
  links: number[][];
  layers: (ConvLayer | CombConvLayer)[];
  /** indices (into the same list) concatenated for the block output: odd layers and the last, ascending */
  outputs: number[];
  cout: number;
}
export interface Head {
  kind: 'head';
  prefix: string;
  cin: number;
  classes: number;
  dropout: number;
}
export type Entry = ConvLayer | DWConvLayer | MaxPool | Dropout | HarDBlock | Head;

/** Parameter kinds decide the layout conversion from PyTorch. */
export type ParamKind = 'conv' | 'depthwise' | 'bn_weight' | 'bn_bias' | 'bn_mean' | 'bn_var' | 'fc_weight' | 'fc_bias';

export interface ParamSpec {
  /** official state_dict name */
  name: string;
  kind: ParamKind;
  /** PyTorch shape (OIHW, [C,1,3,3], [out,in], [C]) */
  torchShape: number[];
  /** TensorFlow.js shape (HWIO, [3,3,C,1], [in,out], [C]) */
  tfShape: number[];
  trainable: boolean;
  /** fan_in / fan_out for initialisation */
  fanIn: number;
  fanOut: number;
}

/** Width of harmonic-block layer `layer` and the layers it reads (official get_link). */
export function harmonicLink(
  layer: number,
  baseCh: number,
  growth: number,
  grmul: number,
): { out: number; cin: number; link: number[] } {
  if (layer === 0) return { out: baseCh, cin: 0, link: [] };
  let out = growth;
  const link: number[] = [];
  for (let i = 0; i < 10; i++) {
    const dv = 2 ** i;
    if (layer % dv === 0) {
      link.push(layer - dv);
      if (i > 0) out *= grmul;
    }
  }
  // int(int(out + 1) / 2) * 2: floor, then round up to even
  out = Math.floor(Math.floor(out + 1) / 2) * 2;
  const cin = link.reduce((s, l) => s + harmonicLink(l, baseCh, growth, grmul).out, 0);
  return { out, cin, link };
}

const convLayer = (prefix: string, cin: number, cout: number, k: number, stride = 1): ConvLayer => ({
  kind: 'conv',
  prefix,
  cin,
  cout,
  k,
  stride,
});
const dwConvLayer = (prefix: string, c: number, stride: number): DWConvLayer => ({ kind: 'dwconv', prefix, c, stride });

function hardBlock(
  prefix: string,
  cin: number,
  growth: number,
  grmul: number,
  n: number,
  depthwise: boolean,
): HarDBlock {
  const links: number[][] = [];
  const layers: (ConvLayer | CombConvLayer)[] = [];
  let cout = 0;
  for (let L = 1; L <= n; L++) {
    const { out, cin: lin, link } = harmonicLink(L, cin, growth, grmul);
    links.push(link);
    const p = `${prefix}.layers.${L - 1}`;
    layers.push(
      depthwise
        ? {
            kind: 'comb',
            prefix: p,
            conv: convLayer(`${p}.layer1`, lin, out, 1),
            dw: dwConvLayer(`${p}.layer2`, out, 1),
          }
        : convLayer(p, lin, out, 3),
    );
    if (L % 2 === 1 || L === n) cout += out;
  }
  const outputs: number[] = [];
  for (let i = 1; i <= n; i++) if (i % 2 === 1 || i === n) outputs.push(i);
  return { kind: 'block', prefix, cin, links, layers, outputs, cout };
}

/** The official `base` list for a variant. */
export function buildPlan(v: HarDNetVariant, classes: number): Entry[] {
  const base: Entry[] = [];
  const next = () => `base.${base.length}`;
  base.push(convLayer(next(), 3, v.firstCh[0], 3, 2));
  base.push(convLayer(next(), v.firstCh[0], v.firstCh[1], v.secondKernel));
  base.push(v.depthwise ? dwConvLayer(next(), v.firstCh[1], 2) : { kind: 'maxpool', k: 3, stride: 2, pad: 1 });
  let ch = v.firstCh[1];
  const blocks = v.nLayers.length;
  for (let i = 0; i < blocks; i++) {
    const blk = hardBlock(next(), ch, v.gr[i], v.grmul, v.nLayers[i], v.depthwise);
    base.push(blk);
    ch = blk.cout;
    if (i === blocks - 1 && v.lastBlockDropout !== undefined) base.push({ kind: 'dropout', rate: v.lastBlockDropout });
    base.push(convLayer(next(), ch, v.chList[i], 1));
    ch = v.chList[i];
    if (v.downSamp[i] === 1)
      base.push(v.depthwise ? dwConvLayer(next(), ch, 2) : { kind: 'maxpool', k: 2, stride: 2, pad: 0 });
  }
  base.push({ kind: 'head', prefix: next(), cin: ch, classes, dropout: v.headDropout });
  return base;
}

function bnParams(prefix: string, c: number): ParamSpec[] {
  const p = (suffix: string, kind: ParamKind, trainable: boolean): ParamSpec => ({
    name: `${prefix}.norm.${suffix}`,
    kind,
    torchShape: [c],
    tfShape: [c],
    trainable,
    fanIn: c,
    fanOut: c,
  });
  return [
    p('weight', 'bn_weight', true),
    p('bias', 'bn_bias', true),
    p('running_mean', 'bn_mean', false),
    p('running_var', 'bn_var', false),
  ];
}

function convParams(l: ConvLayer): ParamSpec[] {
  return [
    {
      name: `${l.prefix}.conv.weight`,
      kind: 'conv',
      trainable: true,
      torchShape: [l.cout, l.cin, l.k, l.k],
      tfShape: [l.k, l.k, l.cin, l.cout],
      fanIn: l.cin * l.k * l.k,
      fanOut: l.cout * l.k * l.k,
    },
    ...bnParams(l.prefix, l.cout),
  ];
}

function dwParams(l: DWConvLayer): ParamSpec[] {
  return [
    {
      name: `${l.prefix}.dwconv.weight`,
      kind: 'depthwise',
      trainable: true,
      torchShape: [l.c, 1, 3, 3],
      tfShape: [3, 3, l.c, 1],
      fanIn: 9,
      fanOut: l.c * 9,
    },
    ...bnParams(l.prefix, l.c),
  ];
}

/** Every parameter and BN buffer, in state_dict order (num_batches_tracked excluded: it carries no weight). */
export function paramSpecs(plan: Entry[]): ParamSpec[] {
  const out: ParamSpec[] = [];
  for (const e of plan) {
    if (e.kind === 'conv') out.push(...convParams(e));
    else if (e.kind === 'dwconv') out.push(...dwParams(e));
    else if (e.kind === 'block')
      for (const l of e.layers)
        out.push(...(l.kind === 'comb' ? [...convParams(l.conv), ...dwParams(l.dw)] : convParams(l)));
    else if (e.kind === 'head') {
      out.push({
        name: `${e.prefix}.3.weight`,
        kind: 'fc_weight',
        trainable: true,
        torchShape: [e.classes, e.cin],
        tfShape: [e.cin, e.classes],
        fanIn: e.cin,
        fanOut: e.classes,
      });
      out.push({
        name: `${e.prefix}.3.bias`,
        kind: 'fc_bias',
        trainable: true,
        torchShape: [e.classes],
        tfShape: [e.classes],
        fanIn: e.cin,
        fanOut: e.classes,
      });
    }
  }
  return out;
}

/** Output size of a conv/pool along one axis (PyTorch's floor formula). */
export const outSize = (n: number, k: number, stride: number, pad: number) =>
  Math.floor((n + 2 * pad - k) / stride) + 1;

export interface ModelCounts {
  params: number;
  bnBuffers: number;
  macs: number;
}

/** Parameter, BN running-statistics and conv+fc multiply-accumulate counts for one image of size x size. */
export function countModel(plan: Entry[], imageSize: number): ModelCounts {
  const specs = paramSpecs(plan);
  const size = (s: ParamSpec) => s.torchShape.reduce((a, b) => a * b, 1);
  const params = specs.filter((s) => s.trainable).reduce((a, s) => a + size(s), 0);
  const bnBuffers = specs.filter((s) => !s.trainable).reduce((a, s) => a + size(s), 0);
  let hw = imageSize;
  let macs = 0;
  const conv = (l: ConvLayer, h: number) => {
    const o = outSize(h, l.k, l.stride, Math.floor(l.k / 2));
    macs += o * o * l.cout * l.cin * l.k * l.k;
    return o;
  };
  const dw = (l: DWConvLayer, h: number) => {
    const o = outSize(h, 3, l.stride, 1);
    macs += o * o * l.c * 9;
    return o;
  };
  for (const e of plan) {
    if (e.kind === 'conv') hw = conv(e, hw);
    else if (e.kind === 'dwconv') hw = dw(e, hw);
    else if (e.kind === 'maxpool') hw = outSize(hw, e.k, e.stride, e.pad);
    else if (e.kind === 'block')
      for (const l of e.layers) {
        if (l.kind === 'comb') {
          conv(l.conv, hw);
          dw(l.dw, hw);
        } else conv(l, hw);
      }
    else if (e.kind === 'head') macs += e.cin * e.classes;
  }
  return { params, bnBuffers, macs };
}
