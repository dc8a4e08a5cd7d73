import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';

export type { NatsConnection };

/**
 * Connects to NATS, reconnecting forever (a broker restart is survived).
 * `url` may list several servers, comma-separated (the nodes of a cluster):
 * the client picks one and fails over to the others.
 */
export async function connectNats(url: string, opts: { name?: string; user?: string; pass?: string } = {}): Promise<NatsConnection> {
  return connect({
    servers: url
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0),
    name: opts.name ?? 'cvc',
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    ...(opts.user ? { user: opts.user, pass: opts.pass ?? '' } : {}),
  });
}
