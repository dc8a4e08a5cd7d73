import { intOpt, positiveInt } from './args.js';
import { UsageError } from './errors.js';

/** Entries `cvc run|sweep|cluster-job list` prints without --limit or --all. */
export const DEFAULT_LIST_LIMIT = 50;
/** The page size asked for with --all (the coordinator's largest page). */
const ALL_PAGE_SIZE = 1000;

/** The flags of a paged list command. */
export const LIST_PAGE_OPTIONS = {
  limit: { type: 'string' },
  all: { type: 'boolean' },
} as const;

/** How much of a list to fetch: `limit` entries at most, or every one (`limit` Infinity). */
export interface ListScope {
  readonly limit: number;
}

/** --limit / --all from parsed flags; they exclude each other. */
export function listScope(values: Record<string, unknown>): ListScope {
  if (values['all'] === true && values['limit'] !== undefined) throw new UsageError('--limit and --all exclude each other');
  if (values['all'] === true) return { limit: Number.POSITIVE_INFINITY };
  return { limit: intOpt(values, 'limit', DEFAULT_LIST_LIMIT, positiveInt) ?? DEFAULT_LIST_LIMIT };
}

/** One answer of a paged list RPC. */
export interface ListAnswer<T> {
  readonly items: T[];
  readonly nextPageToken: string;
  readonly remaining: number;
}

/**
 * Fetches pages until `scope.limit` entries are in hand or none are left.
 * `more` is how many the coordinator had beyond them. A coordinator from
 * before paging answers everything at once: that list is cut to the limit here.
 */
export async function fetchPages<T>(
  scope: ListScope,
  fetch: (req: { pageSize: number; pageToken: string }) => Promise<ListAnswer<T>>,
): Promise<{ items: T[]; more: number }> {
  const items: T[] = [];
  let token = '';
  let more = 0;
  for (;;) {
    const want = scope.limit - items.length;
    const a = await fetch({ pageSize: Number.isFinite(want) ? Math.min(want, ALL_PAGE_SIZE) : ALL_PAGE_SIZE, pageToken: token });
    items.push(...a.items);
    more = a.remaining;
    token = a.nextPageToken;
    if (!token || items.length >= scope.limit) break;
  }
  if (items.length > scope.limit) {
    more += items.length - scope.limit;
    items.length = scope.limit;
  }
  return { items, more };
}

/** The line under a list that was cut short, or '' when nothing was left out. */
export function moreLine(more: number, command: string): string {
  return more > 0 ? `… ${more} more; ${command} --all or --limit N lists them\n` : '';
}
