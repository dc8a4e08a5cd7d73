export { startNatsServer, type NatsServer } from './nats-server.js';
export { createTaskQueue, taskMsgId, type TaskQueue, type TaskQueueOptions, type FoldTask, type TaskDelivery } from './task-queue.js';
export { createDocStore, type DocStore, type Versioned } from './run-store.js';
export { connectNats, type NatsConnection } from './connect.js';
export { natsEnvSchema, natsAuthFromEnv } from './env.js';
export { isNatsUnavailable, JETSTREAM_UNAVAILABLE_CODES } from './availability.js';
export { MessagingError, type MessagingErrorCode } from './errors.js';
export { isWrongLastSequence, isStreamNotFound, isConsumerNotFound, isNoMessageFound } from './jetstream-errors.js';
