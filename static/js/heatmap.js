// Decoding the heatmap blob of a frame (see app/frames.py):
//   base64 → zlib inflate → undo the median predictor → uint8 maps.
// Thumbnails come first, one T×T map per neuron of every layer in order, then the
// output plot's G×G maps, named by h.maps: ["p1"] (two classes: p(class 1) as a byte),
// ["top", "conf"] (more classes) or ["value"] (regression). A "p1" map is expanded here
// into top and conf, so callers always get maps = [top, conf] or [value].

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

// In place: each byte was sent as (value − pred) mod 256, where pred is the median of the
// left (a), upper (b) and a + b − upper-left neighbours' values, 0 outside the map.
// Neighbours come before a pixel in row order, so they are already decoded.
function undoMedian(buf, offset, side) {
  for (let r = 0; r < side; r++) {
    const row = offset + r * side;
    for (let c = 0; c < side; c++) {
      const i = row + c;
      const a = c > 0 ? buf[i - 1] : 0;
      const b = r > 0 ? buf[i - side] : 0;
      const ab = r > 0 && c > 0 ? buf[i - side - 1] : 0;
      const lo = a < b ? a : b, hi = a < b ? b : a;
      let pred = a + b - ab;
      if (pred < lo) pred = lo;
      else if (pred > hi) pred = hi;
      buf[i] = (buf[i] + pred) & 255;
    }
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
      undoMedian(raw, offset, T);
      layer.push(raw.subarray(offset, offset + T * T));
      offset += T * T;
    }
    thumbs.push(layer);
  }
  const names = h.maps || (problem === "classification" ? ["top", "conf"] : ["value"]);
  let maps = [];
  for (let m = 0; m < names.length; m++) {
    undoMedian(raw, offset, G);
    maps.push(raw.subarray(offset, offset + G * G));
    offset += G * G;
  }
  if (names[0] === "p1") {
    // Two classes: the winner is class 1 when p1 > ½, and the confidence 2·|p1 − ½|.
    const p1 = maps[0], top = new Uint8Array(G * G), conf = new Uint8Array(G * G);
    for (let k = 0; k < p1.length; k++) {
      top[k] = p1[k] >= 128 ? 1 : 0;
      conf[k] = Math.abs(2 * p1[k] - 255);
    }
    maps = [top, conf];
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
