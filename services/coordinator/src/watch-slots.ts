import { createHash } from 'node:crypto';
import { CoordinatorError } from './errors.js';

/** Default of `GrpcServerOptions.maxWatchesPerClient` (CVC_MAX_WATCHES_PER_CLIENT). */
export const DEFAULT_MAX_WATCHES_PER_CLIENT = 64;
/** Default of `GrpcServerOptions.maxWatches` (CVC_MAX_WATCHES). */
export const DEFAULT_MAX_WATCHES = 2048;

/**
 * Counts the open watch streams (WatchRun, WatchSweep, WatchClusterJob), per
 * client and in all. Each stream holds a KV watch (a NATS consumer) and its
 * buffers until it ends, so one client opening streams in a loop, or many
 * forgotten `cvc ... watch` processes, could otherwise exhaust the
 * coordinator. A stream over either cap is refused with RESOURCE_EXHAUSTED
 * naming the cap.
 */
export class WatchSlots {
  private readonly byClient = new Map<string, number>();
  private open = 0;

  constructor(
    readonly perClient = DEFAULT_MAX_WATCHES_PER_CLIENT,
    readonly total = DEFAULT_MAX_WATCHES,
  ) {}

  /** Takes a slot for `client` (a peer address); returns its release, which is safe to call more than once. */
  take(client: string): () => void {
    const mine = this.byClient.get(client) ?? 0;
    if (mine >= this.perClient)
      throw new CoordinatorError(
        'RESOURCE_EXHAUSTED',
        `${client} has ${mine} watch streams open, the most one client may (CVC_MAX_WATCHES_PER_CLIENT ${this.perClient}); end one and watch again`,
      );
    if (this.open >= this.total)
      throw new CoordinatorError(
        'RESOURCE_EXHAUSTED',
        `the coordinator has ${this.open} watch streams open, the most it takes (CVC_MAX_WATCHES ${this.total}); try again later`,
      );
    this.byClient.set(client, mine + 1);
    this.open++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.open--;
      const n = (this.byClient.get(client) ?? 1) - 1;
      if (n > 0) this.byClient.set(client, n);
      else this.byClient.delete(client);
    };
  }

  /** Watch streams open now. */
  get inUse(): number {
    return this.open;
  }
}

/**
 * The client a call counts against: its peer's host, without the port (each
 * connection has its own), and with a bearer token a short digest of it (never
 * the token): users behind one address (a NAT, an ingress) with tokens of their
 * own count apart.
 */
export function watchClient(peer: string, authorization?: string): string {
  const host = /^(.*):\d+$/.exec(peer)?.[1] ?? peer;
  if (!authorization) return host;
  return `${host} (token sha256:${createHash('sha256').update(authorization).digest('hex').slice(0, 12)})`;
}
