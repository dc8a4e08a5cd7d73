export { Canvas, type Rgb } from './canvas.js';
export { drawText, textWidth } from './font.js';
export { imageGrid } from './grid.js';
export { lossCurves, type FoldCurve } from './curves.js';
