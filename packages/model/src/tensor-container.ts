import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { NamedArray } from './checkpoint.js';
import { ModelError } from './errors.js';

/*
 * The container a fold checkpoint and a clustering state share (integers
 * little-endian):
 *   MAGIC (8 bytes) | u32 header length L | L bytes JSON (padded with spaces
 *   so the payload is 4-byte aligned) | payload (tensor values, 4 bytes each)
 *   | sha256 (32 bytes) over everything before it.
 * The JSON header carries the caller's fields plus `tensors`: where each
 * tensor's values lie in the payload and which group it belongs to.
 */

/** A non-negative integer that fits an int32, for header schemas. */
export const count = z
  .number()
  .int()
  .min(0)
  .max(2 ** 31);

/** The header's `tensors` list, for a container whose tensors fall in `groups`. */
export function tensorListSchema<const G extends readonly [string, ...string[]]>(groups: G) {
  return z
    .array(
      z.object({
        group: z.enum(groups),
        name: z.string().min(1).max(512),
        shape: z.array(count).max(8),
        dtype: z.enum(['float32', 'int32']),
        offset: count.refine((o) => o % 4 === 0, 'offset must be 4-byte aligned'),
        length: count,
      }),
    )
    .max(100_000);
}

interface StoredTensor {
  readonly group: string;
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: 'float32' | 'int32';
  readonly offset: number;
  readonly length: number;
}

/** Writes `header` (its `tensors` list is added last) and the values of `entries`, each under its group. */
export function encodeContainer(magic: string, header: Record<string, unknown>, entries: readonly (readonly [string, NamedArray])[]): Uint8Array {
  const tensors: StoredTensor[] = [];
  let offset = 0;
  for (const [group, a] of entries) {
    tensors.push({ group, name: a.name, shape: [...a.shape], dtype: a.dtype, offset, length: a.values.length });
    offset += a.values.length * 4;
  }
  const text = JSON.stringify({ ...header, tensors });
  const pad = (4 - ((12 + new TextEncoder().encode(text).length) % 4)) % 4;
  const json = new TextEncoder().encode(text + ' '.repeat(pad));
  const start = 12 + json.length;
  const out = new Uint8Array(start + offset + 32);
  out.set(new TextEncoder().encode(magic), 0);
  new DataView(out.buffer).setUint32(8, json.length, true);
  out.set(json, 12);
  let at = start;
  for (const [, a] of entries) {
    out.set(new Uint8Array(a.values.buffer, a.values.byteOffset, a.values.byteLength), at);
    at += a.values.byteLength;
  }
  out.set(createHash('sha256').update(out.subarray(0, at)).digest(), at);
  return out;
}

/**
 * Reads a container written by `encodeContainer`: checks the magic, the
 * checksum and the header against `schema` (a valid checksum proves nothing
 * about a buggy or hostile writer), and returns the header with the tensors by
 * group (copied: 4-byte aligned, not sharing a Buffer's memory). Throws
 * ModelError naming `name`; `what` names the format ("cvc checkpoint").
 */
export function decodeContainer<H extends { readonly tensors: readonly StoredTensor[] }>(
  bytes: Uint8Array,
  magic: string,
  schema: z.ZodType<H>,
  name: string,
  what: string,
): { header: H; groups: Map<string, NamedArray[]> } {
  if (bytes.length < 12 + 32 || new TextDecoder().decode(bytes.subarray(0, 8)) !== magic) {
    throw new ModelError('CHECKPOINT_CORRUPT', `${name}: not a ${what} (bad magic or too short)`);
  }
  const body = bytes.subarray(0, bytes.length - 32);
  if (
    !createHash('sha256')
      .update(body)
      .digest()
      .equals(bytes.subarray(bytes.length - 32))
  ) {
    throw new ModelError('CHECKPOINT_CHECKSUM', `${name}: checksum mismatch (truncated or corrupted)`);
  }
  const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(8, true);
  if (12 + len > body.length) throw new ModelError('CHECKPOINT_CORRUPT', `${name}: header length ${len} runs past the end`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + len)));
  } catch (err) {
    throw new ModelError('CHECKPOINT_CORRUPT', `${name}: header is not valid JSON`, { cause: err });
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ModelError('CHECKPOINT_CORRUPT', `${name}: malformed header: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`);
  }
  const header = parsed.data;
  const start = 12 + len;
  const groups = new Map<string, NamedArray[]>();
  for (const t of header.tensors) {
    if (t.shape.reduce((p, d) => p * d, 1) !== t.length) {
      throw new ModelError('CHECKPOINT_CORRUPT', `${name}: tensor ${t.name} has shape [${t.shape.join(', ')}] but ${t.length} values`);
    }
    const from = start + t.offset;
    const to = from + t.length * 4;
    if (to > body.length) throw new ModelError('CHECKPOINT_CORRUPT', `${name}: tensor ${t.name} runs past the end`);
    const copy = new Uint8Array(bytes.subarray(from, to));
    const values = t.dtype === 'int32' ? new Int32Array(copy.buffer) : new Float32Array(copy.buffer);
    const list = groups.get(t.group) ?? [];
    list.push({ name: t.name, shape: t.shape, dtype: t.dtype, values });
    groups.set(t.group, list);
  }
  return { header, groups };
}
