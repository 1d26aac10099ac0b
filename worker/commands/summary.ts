/** `launch summary`: parameter, BN running-statistics and conv+fc MAC counts of a model, from its layer plan. */
import { UsageError } from '../../shared/errors.js';
import { resolveVariant } from '../model/variants.js';
import { buildPlan, countModel } from '../model/plan.js';
import { positiveInt } from './args.js';

export interface SummaryOptions {
  model?: string;
  image_size: string;
  classes_num: string;
  json?: boolean;
}

export function summary(o: SummaryOptions, out: (line: string) => void = console.log): number {
  if (!o.model) throw new UsageError('summary: --model is required (e.g. --model HarDNet68)');
  const variant = resolveVariant(o.model);
  const imageSize = positiveInt(o.image_size, '--image_size');
  const classes = positiveInt(o.classes_num, '--classes_num');
  const c = countModel(buildPlan(variant, classes), imageSize);
  if (o.json) {
    out(
      JSON.stringify({
        model: variant.name,
        params: c.params,
        bn_buffers: c.bnBuffers,
        macs: c.macs,
        image_size: imageSize,
        classes_num: classes,
      }),
    );
    return 0;
  }
  const n = (v: number) => v.toLocaleString('en-US');
  out(`Model: ${variant.name}, ${classes} classes, input ${imageSize}x${imageSize}x3`);
  out(`  parameters (all trainable): ${n(c.params)}`);
  out(`  BN running statistics:      ${n(c.bnBuffers)}`);
  out(`  conv+fc MACs per image:     ${n(c.macs)} (${(c.macs / 1e9).toFixed(2)} G)`);
  return 0;
}
