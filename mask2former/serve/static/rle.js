// COCO's compressed RLE (the "counts" string of a COCO results entry) -> a mask.
// Runs alternate background / foreground and walk the image column by column (Fortran order);
// each run length is written in 5-bit groups as characters from '0' (48), a group with bit 6 set
// continues the number, bit 5 of the last group is its sign, and from the third run on the value
// is stored as the difference to the run two places before.
"use strict";

function rleCounts(text) {
  const counts = [];
  let p = 0;
  while (p < text.length) {
    let value = 0, shift = 0, more = true;
    while (more) {
      const c = text.charCodeAt(p) - 48;
      value |= (c & 0x1f) << shift;
      more = (c & 0x20) !== 0;
      p += 1;
      shift += 5;
      if (!more && (c & 0x10)) value |= -1 << shift;
    }
    if (counts.length > 2) value += counts[counts.length - 2];
    counts.push(value);
  }
  return counts;
}

// Uint8Array of height * width in row-major order, 1 inside the mask.
function rleDecode(rle) {
  const [height, width] = rle.size;
  const mask = new Uint8Array(height * width);
  const counts = typeof rle.counts === "string" ? rleCounts(rle.counts) : rle.counts;
  let position = 0;
  for (let i = 0; i < counts.length; i++) {
    const end = position + counts[i];
    if (i % 2 === 1) {
      for (let k = position; k < end; k++) {
        const row = k % height, col = (k - row) / height;
        mask[row * width + col] = 1;
      }
    }
    position = end;
  }
  return mask;
}

if (typeof module !== "undefined") module.exports = { rleCounts, rleDecode };
