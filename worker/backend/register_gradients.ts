/**
 * Gradient functions for every tfjs kernel.
 *
 * @tensorflow/tfjs-core's Node entry (tf-core.node.js) registers no gradients, and its ESM files import each other
 * without file extensions, which Node's ESM loader cannot resolve. The umbrella package's Node bundle registers
 * them all into core's global gradient registry (the route @tensorflow/tfjs-node itself takes), so importing it
 * once for its side effect is enough; ops keep coming from @tensorflow/tfjs-core, which shares the same global
 * engine and registries.
 */
import '@tensorflow/tfjs';
