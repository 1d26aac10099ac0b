// Side-effect module: registers every tfjs gradient function. Import it before tf.grads /
// tf.variableGrads. Needed because tfjs-core's Node bundle (its package "main") registers no
// gradients, and its dist/register_all_gradients.js is extensionless ESM that Node cannot load;
// tfjs-layers' Node bundle registers all of them into tfjs's global gradient registry.
import '@tensorflow/tfjs-layers';
