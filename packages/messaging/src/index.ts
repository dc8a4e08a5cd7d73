export { startNatsServer, type NatsServer } from './nats-server.js';
export { startNatsCluster, jszMetaLeader, type NatsCluster, type NatsClusterNode, type NatsClusterOptions } from './nats-cluster.js';
export { createTaskQueue, taskMsgId, type TaskQueue, type TaskQueueOptions, type FoldTask, type TaskDelivery } from './task-queue.js';
export { createDocStore, type DocStore, type DocStoreOptions, type Versioned } from './run-store.js';
export { NatsReplicasError } from './replicas.js';
export { connectNats, type NatsConnection } from './connect.js';
export { natsEnvSchema, natsAuthFromEnv } from './env.js';
export { isNatsUnavailable } from './availability.js';
