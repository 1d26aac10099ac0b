/**
 * The HarDNet variants as tables, exactly as the official PyTorch implementation defines them
 * (../shared/reference/hardnet.md). Everything else — layer list, parameter names, shapes, MACs — is derived
 * from these rows.
 */

import { UsageError } from '../../shared/errors.js';
import { canonicalModelName, MODEL_NAMES, modelNameProblem, type ModelVariant } from '../../shared/model_names.js';

export interface HarDNetVariant {
  name: string;
  /** channels of the two stem convolutions */
  firstCh: [number, number];
  /** kernel size of the second stem conv: 3 for 68/85, 1 for the depthwise-separable (ds) variants */
  secondKernel: 1 | 3;
  /** ds variants: CombConv layers in blocks and depthwise stride-2 convs instead of max-pooling */
  depthwise: boolean;
  /** growth multiplier m of the harmonic blocks */
  grmul: number;
  /** output channels of each block's 1x1 transition conv */
  chList: number[];
  /** growth rate k of each block */
  gr: number[];
  /** layers per block */
  nLayers: number[];
  /** 1 where a downsampling follows the block's transition conv */
  downSamp: number[];
  /** dropout before the classifier */
  headDropout: number;
  /** HarDNet85 only: dropout after its last block */
  lastBlockDropout?: number;
}

const hardnet68 = {
  firstCh: [32, 64] as [number, number],
  grmul: 1.7,
  chList: [128, 256, 320, 640, 1024],
  gr: [14, 16, 20, 40, 160],
  nLayers: [8, 16, 16, 16, 4],
  downSamp: [1, 0, 1, 1, 0],
};

/** keyed by exactly the names of shared/model_names.ts (`satisfies` refuses a missing or an extra one) */
export const VARIANTS: Readonly<Record<string, HarDNetVariant>> = {
  HarDNet39ds: {
    name: 'HarDNet39ds',
    firstCh: [24, 48],
    secondKernel: 1,
    depthwise: true,
    grmul: 1.6,
    chList: [96, 320, 640, 1024],
    gr: [16, 20, 64, 160],
    nLayers: [4, 16, 8, 4],
    downSamp: [1, 1, 1, 0],
    headDropout: 0.05,
  },
  HarDNet68: { name: 'HarDNet68', ...hardnet68, secondKernel: 3, depthwise: false, headDropout: 0.1 },
  HarDNet68ds: { name: 'HarDNet68ds', ...hardnet68, secondKernel: 1, depthwise: true, headDropout: 0.05 },
  HarDNet85: {
    name: 'HarDNet85',
    firstCh: [48, 96],
    secondKernel: 3,
    depthwise: false,
    grmul: 1.7,
    chList: [192, 256, 320, 480, 720, 1280],
    gr: [24, 24, 28, 36, 48, 256],
    nLayers: [8, 16, 16, 16, 16, 4],
    downSamp: [1, 0, 1, 0, 1, 0],
    headDropout: 0.2,
    lastBlockDropout: 0.1,
  },
} satisfies Record<ModelVariant, HarDNetVariant>;

export { MODEL_NAMES };

/** Resolve a model name (official or PaddleClas spelling); an unknown one lists the closest valid names. */
export function resolveVariant(name: string): HarDNetVariant {
  const canonical = canonicalModelName(name);
  if (canonical) return VARIANTS[canonical]!;
  throw new UsageError(modelNameProblem(name)!);
}
