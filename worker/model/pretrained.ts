/** `pretrained_model`: initialise a model's weights from a file, whatever its format. */
import fs from 'node:fs';
import type { HarDNet } from './hardnet.js';
import { loadTorchWeights } from './weights.js';

export async function loadPretrained(model: HarDNet, file: string): Promise<void> {
  if (!fs.existsSync(file)) throw new Error(`pretrained_model '${file}' does not exist`);
  // torch.save's zip format starts with a local-file header ("PK\x03\x04"); the legacy format is a raw pickle
  const head = Buffer.alloc(4);
  const fd = fs.openSync(file, 'r');
  fs.readSync(fd, head, 0, 4, 0);
  fs.closeSync(fd);
  if (file.endsWith('.pth') || file.endsWith('.pt') || head.toString('latin1') === 'PK\x03\x04') return loadTorchWeights(model, file);
  throw new Error(`pretrained_model '${file}': unrecognised format (expected an official PyTorch .pth)`);
}
