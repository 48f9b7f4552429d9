// Decoding the heatmap blob of a frame (see app/frames.py):
//   base64 → zlib inflate → undo the per-row delta (PNG "Sub") → uint8 maps.
// Thumbnails come first, one T×T map per neuron of every layer in order, then the
// output plot's G×G maps (classification: argmax class and confidence; regression: value).

function base64ToBytes(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function undoSub(buf, offset, side) {
  for (let r = 0; r < side; r++) {
    const row = offset + r * side;
    for (let c = 1; c < side; c++) buf[row + c] = (buf[row + c] + buf[row + c - 1]) & 255;
  }
}

export async function decodeHeatmaps(h, unitsPerLayer, problem) {
  const raw = await inflate(base64ToBytes(h.data));
  const T = h.thumb, G = h.res;
  const thumbs = [];
  let offset = 0;
  for (const units of unitsPerLayer) {
    const layer = [];
    for (let j = 0; j < units; j++) {
      undoSub(raw, offset, T);
      layer.push(raw.subarray(offset, offset + T * T));
      offset += T * T;
    }
    thumbs.push(layer);
  }
  const nMaps = problem === "classification" ? 2 : 1;
  const maps = [];
  for (let m = 0; m < nMaps; m++) {
    undoSub(raw, offset, G);
    maps.push(raw.subarray(offset, offset + G * G));
    offset += G * G;
  }
  return { thumbs, maps, thumb: T, res: G };
}

// Paint a square map of bytes through a lookup table into a canvas of the same size.
export function paintMap(canvas, bytes, side, lut) {
  if (canvas.width !== side) canvas.width = canvas.height = side;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(side, side);
  const px = new Uint32Array(img.data.buffer);
  for (let k = 0; k < px.length; k++) px[k] = lut[bytes[k]];
  ctx.putImageData(img, 0, 0);
}
