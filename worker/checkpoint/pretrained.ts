/** `pretrained_model`: initialise a model's weights from a file, whatever its format. */
import { ConfigError } from '../../shared/errors.js';
import fs from 'node:fs';
import path from 'node:path';
import type { HarDNet } from '../model/hardnet.js';
import { loadCheckpointWeights, resolveCheckpoint } from './checkpoint.js';
import { loadTorchWeights } from './torch_weights.js';

/**
 * Accepts an official PyTorch `.pth` (torch.save zip or legacy format) or a checkpoint directory of this tool
 * (`<model_save_dir>/<name>/<epoch>/` or `best_model/`, or its weights.json).
 */
export async function loadPretrained(model: HarDNet, file: string): Promise<void> {
  if (resolveCheckpoint(file)) return loadCheckpointWeights(file, model);
  if (!fs.existsSync(file)) throw new ConfigError(`pretrained_model '${file}' does not exist`);
  if (fs.statSync(file).isDirectory())
    throw new ConfigError(
      `pretrained_model '${file}' is a directory but not a checkpoint (no weights.json/state.json)`,
    );
  // a weights.json whose directory is no complete checkpoint: the checkpoint loader names what is missing
  if (path.basename(file) === 'weights.json') return loadCheckpointWeights(path.dirname(file), model);
  return loadTorchWeights(model, file);
}
