/**
 * The HarDNet variants by name: the contract between the config (validated in the launcher and in the worker)
 * and the model table (worker/model/variants.ts, keyed by these names, which the compiler holds to this list).
 * Lives in shared/ so that the launcher can check a config without importing the worker.
 */
import { byDistance } from './closest.js';

export const MODEL_VARIANTS = ['HarDNet39ds', 'HarDNet68', 'HarDNet68ds', 'HarDNet85'] as const;
export type ModelVariant = (typeof MODEL_VARIANTS)[number];

/** PaddleClas spells the ds variants with an underscore. */
export const MODEL_ALIASES: Readonly<Record<string, ModelVariant>> = {
  HarDNet39_ds: 'HarDNet39ds',
  HarDNet68_ds: 'HarDNet68ds',
};

export const MODEL_NAMES: readonly string[] = [...MODEL_VARIANTS, ...Object.keys(MODEL_ALIASES)];

/** The variant a name (official or PaddleClas spelling) stands for, or undefined. */
export function canonicalModelName(name: string): ModelVariant | undefined {
  return (MODEL_VARIANTS as readonly string[]).includes(name) ? (name as ModelVariant) : MODEL_ALIASES[name];
}

/** Why `name` is not a model name, listing the closest valid names; undefined when it is one. */
export function modelNameProblem(name: string): string | undefined {
  if (canonicalModelName(name) !== undefined) return undefined;
  const closest = byDistance(name, MODEL_NAMES).slice(0, 3);
  return `unknown architecture '${name}'; closest valid names: ${closest.join(', ')} (all: ${MODEL_NAMES.join(', ')})`;
}
