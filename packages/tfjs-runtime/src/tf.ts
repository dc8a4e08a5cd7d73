// The one place that loads TensorFlow.js for cvc. The union package's Node
// bundle registers every gradient and the layers API; the wasm backend always
// installs. The native backends (optional) attach to this same tfjs-core.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

export { tf };
