// Constants shared with the server, parsed once from the page's #constants block (filled
// by app/page_constants.py from the Python module that owns each value). Modules read
// shared values from here instead of keeping their own copies.
const block = globalThis.document?.getElementById("constants");
const constants = JSON.parse(block?.textContent || "{}");

export const PLANE = constants.plane; // half-width of the input plane [−PLANE, PLANE]²
export const HISTORY_LEN = constants.history_len; // loss-history points kept
export const ACTIVATIONS = constants.activations; // [{name, formula}] in menu order
export const ACTIVATION_PARAMS = constants.activation_params; // {leaky_slope, elu_alpha}
export const BAR_WIDTH = constants.bar_width; // a probability bar at p = 1, in viewBox units
export const COLORS = constants.colors; // {palettes: {normal, present}, more_classes, …}
export const GRAD_DECADES = constants.grad_decades; // [lo, hi]: the gradient view's log scale, powers of ten
