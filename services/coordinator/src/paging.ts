import { CoordinatorError } from './errors.js';

/** Entries per page when a request with a page_token names no page_size. */
export const DEFAULT_PAGE_SIZE = 50;
/** The most entries one page holds, whatever page_size asks for. */
export const MAX_PAGE_SIZE = 1000;

/** A list request's paging fields (ListRuns, ListClusterJobs, ListSweeps). */
export interface PageRequest {
  readonly pageSize: number;
  readonly pageToken: string;
}

/** Where an entry sorts in a newest-first list: its creation time, then its id (a tie-break that never changes). */
export interface Position {
  readonly createdAtMs: number;
  readonly id: string;
}

/** Newest first; equal times by id, descending. */
export function newestFirst(a: Position, b: Position): number {
  return b.createdAtMs - a.createdAtMs || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

const TOKEN_PREFIX = 'p1.';

/** The token of the position after `last`: the page that follows starts with the next older entry. */
export function pageToken(last: Position): string {
  return TOKEN_PREFIX + Buffer.from(`${last.createdAtMs}:${last.id}`).toString('base64url');
}

/** The position a token names; INVALID_ARGUMENT naming page_token when it is not one `pageToken` made. */
export function decodePageToken(token: string): Position {
  const bad = (): CoordinatorError =>
    new CoordinatorError('INVALID_ARGUMENT', `page_token ${JSON.stringify(token.slice(0, 80))} is not a token from a previous list answer`);
  if (!token.startsWith(TOKEN_PREFIX)) throw bad();
  const text = Buffer.from(token.slice(TOKEN_PREFIX.length), 'base64url').toString();
  const m = /^(\d{1,16}):(.{1,200})$/s.exec(text);
  if (!m || pageToken({ createdAtMs: Number(m[1]), id: m[2]! }) !== token) throw bad();
  return { createdAtMs: Number(m[1]), id: m[2]! };
}

/**
 * How many entries a request asks for: every one (the answer before paging,
 * what an old client's empty request gets) when it has neither page_size nor
 * page_token; otherwise page_size, DEFAULT_PAGE_SIZE for 0, at most MAX_PAGE_SIZE.
 */
export function pageLimit(req: PageRequest): number {
  if (req.pageSize === 0) return req.pageToken ? DEFAULT_PAGE_SIZE : Number.POSITIVE_INFINITY;
  return Math.min(req.pageSize, MAX_PAGE_SIZE);
}

/** One page of a list: its entries and how many follow them. */
export interface Page<T> {
  readonly items: T[];
  /** Entries after this page. */
  readonly remaining: number;
}

/**
 * The page `req` asks for out of `all` (any order): newest first, starting
 * after the token's position, so entries created since the previous page
 * (newer, hence before it) never shift it. Throws INVALID_ARGUMENT for a bad token.
 */
export function selectPage<T extends Position>(all: readonly T[], req: PageRequest): Page<T> {
  const from = req.pageToken ? decodePageToken(req.pageToken) : undefined;
  const after = from ? all.filter((e) => newestFirst(from, e) < 0) : [...all];
  after.sort(newestFirst);
  const limit = pageLimit(req);
  const items = after.slice(0, limit);
  return { items, remaining: after.length - items.length };
}

/** The paging fields of an answer listing `items` with `remaining` after them. */
export function pageFields(items: readonly Position[], remaining: number): { nextPageToken: string; remaining: number } {
  const last = items[items.length - 1];
  return { nextPageToken: remaining > 0 && last ? pageToken(last) : '', remaining };
}
