import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';

export type { NatsConnection };

/** Connects to NATS, reconnecting forever (a broker restart is survived). */
export async function connectNats(url: string, opts: { name?: string; user?: string; pass?: string } = {}): Promise<NatsConnection> {
  return connect({
    servers: url,
    name: opts.name ?? 'cvc',
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    ...(opts.user ? { user: opts.user, pass: opts.pass ?? '' } : {}),
  });
}
