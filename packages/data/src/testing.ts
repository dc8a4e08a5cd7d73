/**
 * Test kit of @cvc/data (`@cvc/data/testing`): synthetic image sets, IDX /
 * CIFAR-10 / tar encoders and image-folder trees written from real images.
 * Not part of the product's front door; the published package leaves it out.
 */
export { randomImageSet, tinyDataset, encodeIdx, writeIdxDataset, encodeCifarBatch, writeCifarDataset, encodeTar } from './fixtures.js';
export { writeImageTree, type ImageTreeOptions } from './image-fixtures.js';
