/** Tests run on the backend the product uses here (wasm, with the project's training kernels registered). */
import { selectBackend } from '../../worker/backend/select.js';

export async function useBackend(name: 'wasm' | 'cpu'): Promise<void> {
  await selectBackend(name, { gpuAssigned: false, log: () => {} });
}
