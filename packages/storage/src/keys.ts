import { StorageError } from './errors.js';

/** Longest object key cvc writes (S3 allows 1024 bytes). */
export const MAX_KEY_LENGTH = 512;
const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Checks an object key: '/'-separated segments of letters, digits, '.', '_'
 * and '-', none empty, none '.' or '..', no leading '/', bounded length. Any
 * key built from user input goes through here, so no path traversal or odd
 * names reach storage.
 */
export function validateKey(key: string): string {
  if (key.length === 0 || key.length > MAX_KEY_LENGTH) {
    throw new StorageError('KEY_INVALID', `object key must be 1..${MAX_KEY_LENGTH} characters, got ${key.length}`);
  }
  for (const seg of key.split('/')) {
    if (!SEGMENT.test(seg) || seg === '.' || seg === '..') {
      throw new StorageError('KEY_INVALID', `object key ${JSON.stringify(key)} has an invalid segment ${JSON.stringify(seg)}`);
    }
  }
  return key;
}

/** Validates one path segment taken from user input (a run id, a dataset name). */
export function validateSegment(value: string, what: string, max = 63): string {
  if (value.length === 0 || value.length > max || !SEGMENT.test(value) || value.includes('..')) {
    throw new StorageError(
      'NAME_INVALID',
      `${what} ${JSON.stringify(value)} must be 1..${max} letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
  return value;
}

/** The object layout (one bucket). */
export const layout = {
  datasetPrefix: (name: string, version: string) => `datasets/${validateSegment(name, 'dataset')}/${validateSegment(version, 'dataset version')}`,
  datasetIndex: (name: string) => `datasets/${validateSegment(name, 'dataset')}/index.json`,
  foldCheckpoint: (run: string, fold: number, epoch: number) =>
    `runs/${validateSegment(run, 'run id')}/fold-${fold}/checkpoints/epoch-${String(epoch).padStart(4, '0')}.ckpt`,
  /** The prefix under which every epoch checkpoint of a fold lies (`foldCheckpoint`'s keys). */
  foldCheckpoints: (run: string, fold: number) => `runs/${validateSegment(run, 'run id')}/fold-${fold}/checkpoints/`,
  /**
   * A fold's best checkpoint, one key per attempt (its number, from 1): a replaced attempt whose upload lands late
   * writes its own key, never over the one the current attempt stored.
   */
  foldBest: (run: string, fold: number, attempt: number) => `runs/${validateSegment(run, 'run id')}/fold-${fold}/best/attempt-${attempt}.ckpt`,
  encoderPrefix: (run: string) => `runs/${validateSegment(run, 'run id')}/encoder`,
  reportPrefix: (run: string) => `runs/${validateSegment(run, 'run id')}/report`,
  summary: (run: string) => `runs/${validateSegment(run, 'run id')}/summary.json`,
};
