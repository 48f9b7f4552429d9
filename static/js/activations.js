// The activation functions f(z), for the inspector's live plot of f. The engine's own
// versions are NumPy (app/nn/activations.py); these follow them, and the names and the
// parameters come from the server's constants block. tests/js/activations.test.js checks
// both against values Python computed. Pure: no DOM.

const sigmoid = (z) => 1 / (1 + Math.exp(-z)); // exp overflow gives 1/∞ = 0, the right limit
const GELU_C = Math.sqrt(2 / Math.PI); // the tanh approximation's constants, as in activations.py
const GELU_CUBIC = 0.044715;

// name → (parameters → f). Every name the server offers needs an entry.
const MAKERS = {
  relu: () => (z) => Math.max(0, z),
  tanh: () => Math.tanh,
  sigmoid: () => sigmoid,
  linear: () => (z) => z,
  leaky_relu: ({ leaky_slope }) => (z) => (z > 0 ? z : leaky_slope * z),
  elu: ({ elu_alpha }) => (z) => (z > 0 ? z : elu_alpha * Math.expm1(z)),
  gelu: () => (z) => 0.5 * z * (1 + Math.tanh(GELU_C * (z + GELU_CUBIC * z ** 3))),
  // log(1 + e^z) = max(z, 0) + log1p(e^−|z|): no overflow for large z.
  softplus: () => (z) => Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z))),
  swish: () => (z) => z * sigmoid(z),
};

export const KNOWN_ACTIVATIONS = Object.keys(MAKERS);

// activations: [{name, formula}] from the constants block; params: {leaky_slope, elu_alpha}.
// Returns name → {f, formula} for the names this module can plot.
export function activationTable(activations, params) {
  const table = new Map();
  for (const { name, formula } of activations) {
    if (MAKERS[name]) table.set(name, { f: MAKERS[name](params), formula });
  }
  return table;
}
