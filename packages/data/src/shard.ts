import { createHash } from 'node:crypto';
import { ConfigError } from '@cvc/core';
import { DataError } from './errors.js';
import { concatImages, type ImageSet } from './image-set.js';

/**
 * Shard format, version 1 (all integers little-endian):
 *
 *   "CVCSHARD"            8 bytes magic
 *   u32 version           = 1
 *   u32 L                 header length
 *   header                L bytes of UTF-8 JSON (ShardHeader)
 *   records               count x (u32 source index, u8 label, H*W*C u8 pixels)
 *   "CVCSHEND"            8 bytes trailer magic
 *   sha256                32 bytes, over every byte before the trailer magic
 *
 * A reader verifies magic, version, sizes and the hash before any image is
 * handed out for training, so a corrupt or truncated shard is never used.
 */
export const SHARD_MAGIC = 'CVCSHARD';
export const SHARD_END = 'CVCSHEND';
export const SHARD_VERSION = 1;
const MAX_HEADER = 1 << 20;

export interface ShardHeader {
  readonly dtype: 'uint8';
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly count: number;
  /** Free-form provenance: dataset, version, split, fold. */
  readonly meta: Readonly<Record<string, string | number>>;
}

/** A decoded, verified shard. */
export interface Shard {
  readonly header: ShardHeader;
  readonly set: ImageSet;
  /** Each record's index in the source split. */
  readonly indices: Uint32Array;
  /** SHA-256 of the shard file (hex). */
  readonly sha256: string;
}

const enc = new TextEncoder();

/**
 * Encodes the images at `indices` of `set` as a shard, chunk by chunk, so a
 * shard can be streamed to storage without being held whole. Each yielded
 * chunk of records holds about `chunkBytes` (at least one record), whatever
 * the image size, as `shardChunksFrom`'s do.
 */
export function* shardChunks(
  set: ImageSet,
  indices: ArrayLike<number>,
  meta: ShardHeader['meta'],
  /** The index recorded for each record (default: `indices` itself). */
  recorded: ArrayLike<number> = indices,
  chunkBytes = 1 << 18,
): Generator<Uint8Array> {
  const hash = createHash('sha256');
  const pre = headerBytes({ dtype: 'uint8', height: set.height, width: set.width, channels: set.channels, count: indices.length, meta });
  hash.update(pre);
  yield pre;
  const per = set.height * set.width * set.channels;
  const rec = 5 + per;
  const chunkRecords = Math.max(1, Math.floor(chunkBytes / rec));
  for (let start = 0; start < indices.length; start += chunkRecords) {
    const n = Math.min(chunkRecords, indices.length - start);
    const chunk = new Uint8Array(n * rec);
    const cv = new DataView(chunk.buffer);
    for (let r = 0; r < n; r++) {
      const src = indices[start + r] as number;
      if (src < 0 || src >= set.count) throw new DataError('SHARD_BAD_INDEX', `index ${src} is outside 0..${set.count - 1}`);
      cv.setUint32(r * rec, recorded[start + r] as number, true);
      chunk[r * rec + 4] = set.labels[src] as number;
      chunk.set(set.images.subarray(src * per, (src + 1) * per), r * rec + 5);
    }
    hash.update(chunk);
    yield chunk;
  }
  yield trailerBytes(hash.digest());
}

/**
 * The most bytes a shard may have: a worker and `readShardFile` read a shard
 * whole into one buffer, and Node reads at most 2 GiB - 1 bytes from a file.
 */
export const MAX_SHARD_BYTES = 2 ** 31 - 1;

/** The exact size in bytes of a shard of `count` records of `shape` with header `meta`. */
export function shardBytes(shape: Pick<ShardHeader, 'height' | 'width' | 'channels'>, count: number, meta: ShardHeader['meta']): number {
  const pre = headerBytes({ dtype: 'uint8', height: shape.height, width: shape.width, channels: shape.channels, count, meta });
  return pre.length + count * (5 + shape.height * shape.width * shape.channels) + 40;
}

/**
 * Refuses, before anything is written, an import whose shard `name` would
 * be over `limit` bytes (default MAX_SHARD_BYTES): it could be written, but
 * no worker could read it. Throws ConfigError (field `folds`) saying what to change.
 */
export function checkShardSize(name: string, bytes: number, limit = MAX_SHARD_BYTES): void {
  if (bytes <= limit) return;
  const size = bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${bytes} bytes`;
  throw new ConfigError(
    'folds',
    `${name} would be ${size}, more than the ${limit} bytes a shard may have (a worker reads each shard whole): import with more folds (--folds), a smaller image size (--size) or fewer images`,
  );
}

/** Magic, version, length and JSON of a shard header. */
function headerBytes(header: ShardHeader): Uint8Array {
  const json = enc.encode(JSON.stringify(header));
  const pre = new Uint8Array(16 + json.length);
  pre.set(enc.encode(SHARD_MAGIC), 0);
  const dv = new DataView(pre.buffer);
  dv.setUint32(8, SHARD_VERSION, true);
  dv.setUint32(12, json.length, true);
  pre.set(json, 16);
  return pre;
}

function trailerBytes(digest: Uint8Array): Uint8Array {
  const trailer = new Uint8Array(40);
  trailer.set(enc.encode(SHARD_END), 0);
  trailer.set(digest, 8);
  return trailer;
}

/** One record to stream into a shard. */
export interface ShardRecord {
  /** The record's index in its source split. */
  readonly index: number;
  readonly label: number;
  /** `height * width * channels` uint8 pixels. */
  readonly pixels: Uint8Array;
}

/**
 * Encodes a shard from records that arrive one by one (e.g. images being
 * decoded), yielding a chunk of about `chunkBytes` (at least one record):
 * memory is one chunk, whatever the shard's size. Small chunks matter: they
 * die young, where chunks that live across garbage collections are promoted
 * and pile up until a full collection (measured: peak RSS grew with the
 * folder at 3 MB chunks, stayed flat at 256 KiB). Exactly `count` records
 * must come, each of the header's shape.
 */
export async function* shardChunksFrom(
  shape: { readonly height: number; readonly width: number; readonly channels: number },
  count: number,
  meta: ShardHeader['meta'],
  records: AsyncIterable<ShardRecord>,
  chunkBytes = 1 << 18,
): AsyncGenerator<Uint8Array> {
  const hash = createHash('sha256');
  const pre = headerBytes({ dtype: 'uint8', height: shape.height, width: shape.width, channels: shape.channels, count, meta });
  hash.update(pre);
  yield pre;
  const per = shape.height * shape.width * shape.channels;
  const rec = 5 + per;
  const chunkRecords = Math.max(1, Math.floor(chunkBytes / rec));
  let chunk = new Uint8Array(Math.min(chunkRecords, count) * rec);
  let inChunk = 0;
  let seen = 0;
  for await (const r of records) {
    if (seen >= count) throw new DataError('SHARD_BAD_INDEX', `more than the ${count} records the header promises`);
    if (r.pixels.length !== per) throw new DataError('SHAPE_MISMATCH', `record ${r.index} has ${r.pixels.length} bytes, the shard's images have ${per}`);
    const at = inChunk * rec;
    new DataView(chunk.buffer).setUint32(at, r.index, true);
    chunk[at + 4] = r.label;
    chunk.set(r.pixels, at + 5);
    inChunk++;
    seen++;
    if (inChunk * rec === chunk.length) {
      hash.update(chunk);
      yield chunk;
      chunk = new Uint8Array(Math.min(chunkRecords, count - seen) * rec);
      inChunk = 0;
    }
  }
  if (seen !== count) throw new DataError('SHARD_BAD_INDEX', `${seen} records came, the header promises ${count}`);
  yield trailerBytes(hash.digest());
}

/** Encodes a whole shard into one buffer. */
export function encodeShard(set: ImageSet, indices: ArrayLike<number>, meta: ShardHeader['meta']): Uint8Array {
  const parts = [...shardChunks(set, indices, meta)];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Checks the first 16 bytes (magic, version, header length) and returns the header length. */
function parsePrefix(bytes: Uint8Array, name: string): number {
  if (bytes.length < 16) throw new DataError('SHARD_TRUNCATED', `too short for a shard header (${bytes.length} bytes)`, name);
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== SHARD_MAGIC) throw new DataError('SHARD_BAD_MAGIC', `not a cvc shard (magic ${JSON.stringify(magic)})`, name);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint32(8, true);
  if (version !== SHARD_VERSION)
    throw new DataError('SHARD_BAD_VERSION', `shard format version ${version} is not supported (this cvc reads version ${SHARD_VERSION})`, name);
  const len = dv.getUint32(12, true);
  if (len > MAX_HEADER) throw new DataError('SHARD_CORRUPT', `header length ${len} exceeds ${MAX_HEADER}`, name);
  return len;
}

function parseHeader(bytes: Uint8Array, name: string): { header: ShardHeader; recordsAt: number } {
  const len = parsePrefix(bytes, name);
  if (bytes.length < 16 + len) throw new DataError('SHARD_TRUNCATED', `header truncated (${bytes.length - 16} of ${len} bytes)`, name);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(16, 16 + len)));
  } catch (err) {
    throw new DataError('SHARD_CORRUPT', `header is not valid JSON`, name, { cause: err });
  }
  // The header is read before the checksum is checked: any JSON can be here.
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new DataError('SHARD_CORRUPT', 'header is not a JSON object', name);
  const header = parsed as ShardHeader;
  const dims = [header.height, header.width, header.channels, header.count];
  if (header.dtype !== 'uint8' || !dims.every((d) => Number.isInteger(d) && d >= 0) || header.height * header.width * header.channels === 0) {
    throw new DataError(
      'SHARD_CORRUPT',
      `header has an invalid shape or dtype: ${JSON.stringify({ dtype: header.dtype, height: header.height, width: header.width, channels: header.channels, count: header.count })}`,
      name,
    );
  }
  return { header, recordsAt: 16 + len };
}

/** Decodes and fully verifies a shard (`name` is used in errors). */
export function decodeShard(bytes: Uint8Array, name: string): Shard {
  const { header, recordsAt } = parseHeader(bytes, name);
  const per = header.height * header.width * header.channels;
  const rec = 5 + per;
  const expected = recordsAt + header.count * rec + 40;
  if (bytes.length < expected) throw new DataError('SHARD_TRUNCATED', `truncated: ${bytes.length} bytes, the header promises ${expected}`, name);
  if (bytes.length > expected) throw new DataError('SHARD_CORRUPT', `${bytes.length - expected} unexpected bytes after the trailer`, name);
  const endAt = expected - 40;
  if (new TextDecoder().decode(bytes.subarray(endAt, endAt + 8)) !== SHARD_END) throw new DataError('SHARD_CORRUPT', 'trailer magic missing', name);
  const digest = createHash('sha256').update(bytes.subarray(0, endAt)).digest();
  if (!digest.equals(bytes.subarray(endAt + 8, endAt + 40))) {
    throw new DataError(
      'SHARD_CHECKSUM',
      `payload sha256 ${digest.toString('hex')} does not match the recorded ${Buffer.from(bytes.subarray(endAt + 8, endAt + 40)).toString('hex')}`,
      name,
    );
  }
  const images = new Uint8Array(header.count * per);
  const labels = new Uint8Array(header.count);
  const indices = new Uint32Array(header.count);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let r = 0; r < header.count; r++) {
    const at = recordsAt + r * rec;
    indices[r] = dv.getUint32(at, true);
    labels[r] = bytes[at + 4] as number;
    images.set(bytes.subarray(at + 5, at + 5 + per), r * per);
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  return { header, set: { images, labels, count: header.count, height: header.height, width: header.width, channels: header.channels }, indices, sha256 };
}

/**
 * Streaming reader: decodes records as bytes arrive and yields them in
 * batches of up to `batch`. The hash is checked at the end; a mismatch,
 * truncation or trailing garbage throws then, so callers that must not use
 * unverified data (training) collect everything before using it, as
 * `readShardStream` does.
 */
export async function* streamShardRecords(
  source: AsyncIterable<Uint8Array>,
  name: string,
  batch = 1024,
): AsyncGenerator<{ header: ShardHeader; set: ImageSet; indices: Uint32Array }> {
  const hash = createHash('sha256');
  const buf = new ByteQueue();
  let header: ShardHeader | undefined;
  let rec = 0;
  let seen = 0;
  // Bytes the header needs before it is parsed again: the prefix, then the prefix and its JSON.
  let headerNeeds = 16;
  const flushRecords = function* (final: boolean): Generator<{ header: ShardHeader; set: ImageSet; indices: Uint32Array }> {
    if (!header) return;
    const h = header;
    const per = rec - 5;
    while (seen < h.count) {
      const avail = Math.floor(buf.length / rec);
      const n = Math.min(avail, batch, h.count - seen);
      if (n === 0 || (!final && n < batch && seen + n < h.count)) return;
      // Each byte is copied out of the queue once: linear in the shard, whatever the chunk and batch sizes.
      const block = buf.take(n * rec);
      const images = new Uint8Array(n * per);
      const labels = new Uint8Array(n);
      const indices = new Uint32Array(n);
      const dv = new DataView(block.buffer, block.byteOffset, block.byteLength);
      for (let r = 0; r < n; r++) {
        indices[r] = dv.getUint32(r * rec, true);
        labels[r] = block[r * rec + 4] as number;
        images.set(block.subarray(r * rec + 5, (r + 1) * rec), r * per);
      }
      hash.update(block);
      seen += n;
      yield { header: h, set: { images, labels, count: n, height: h.height, width: h.width, channels: h.channels }, indices };
    }
  };
  for await (const chunk of source) {
    buf.push(chunk);
    if (!header) {
      if (buf.length < headerNeeds) continue;
      // Magic and version are known from the first 16 bytes: a stream that is no shard fails here, not after a megabyte.
      if (headerNeeds === 16) headerNeeds = 16 + parsePrefix(buf.take(16, false), name);
      if (buf.length < headerNeeds) continue;
      const pre = buf.take(headerNeeds);
      const parsed = parseHeader(pre, name);
      header = parsed.header;
      rec = 5 + header.height * header.width * header.channels;
      hash.update(pre);
    }
    yield* flushRecords(false);
  }
  if (!header) throw new DataError('SHARD_TRUNCATED', 'ended before the header was complete', name);
  yield* flushRecords(true);
  if (seen < header.count) throw new DataError('SHARD_TRUNCATED', `ended after ${seen} of ${header.count} records`, name);
  const trailer = buf.take(buf.length);
  if (trailer.length < 40) throw new DataError('SHARD_TRUNCATED', 'ended before the checksum trailer', name);
  if (trailer.length > 40) throw new DataError('SHARD_CORRUPT', `${trailer.length - 40} unexpected bytes after the trailer`, name);
  if (new TextDecoder().decode(trailer.subarray(0, 8)) !== SHARD_END) throw new DataError('SHARD_CORRUPT', 'trailer magic missing', name);
  const digest = hash.digest();
  if (!digest.equals(trailer.subarray(8, 40))) {
    throw new DataError(
      'SHARD_CHECKSUM',
      `payload sha256 ${digest.toString('hex')} does not match the recorded ${Buffer.from(trailer.subarray(8, 40)).toString('hex')}`,
      name,
    );
  }
}

/** Reads a whole shard from a stream, verifying it before returning anything. */
export async function readShardStream(source: AsyncIterable<Uint8Array>, name: string): Promise<{ header: ShardHeader; set: ImageSet; indices: Uint32Array }> {
  const parts: { header: ShardHeader; set: ImageSet; indices: Uint32Array }[] = [];
  for await (const p of streamShardRecords(source, name)) parts.push(p);
  const first = parts[0];
  if (!first) throw new DataError('SHARD_EMPTY', 'has no records', name);
  const set = concatImages(parts.map((p) => p.set));
  const indices = new Uint32Array(set.count);
  let at = 0;
  for (const p of parts) {
    indices.set(p.indices, at);
    at += p.indices.length;
  }
  return { header: first.header, set, indices };
}

/** Bytes as they arrive, in the chunks they came in; `take` copies bytes out from the front once. */
class ByteQueue {
  private readonly parts: Uint8Array[] = [];
  /** Bytes of parts[0] already taken. */
  private head = 0;
  /** Bytes held and not taken. */
  length = 0;

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.parts.push(chunk);
    this.length += chunk.length;
  }

  /** The first `n` bytes (n <= length) in one new buffer; removed from the queue unless `consume` is false. */
  take(n: number, consume = true): Uint8Array {
    const out = new Uint8Array(n);
    let at = 0;
    let i = 0;
    let off = this.head;
    while (at < n) {
      const p = this.parts[i] as Uint8Array;
      const k = Math.min(n - at, p.length - off);
      out.set(p.subarray(off, off + k), at);
      at += k;
      off += k;
      if (off === p.length) {
        i++;
        off = 0;
      }
    }
    if (consume) {
      this.parts.splice(0, i);
      this.head = off;
      this.length -= n;
    }
    return out;
  }
}
