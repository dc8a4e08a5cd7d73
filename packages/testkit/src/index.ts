export { createMemoryTaskQueue, type MemoryTaskQueue, type MemoryTaskQueueOptions, type MemoryTaskRecord } from './memory-task-queue.js';
export { createMemoryDocStore, type MemoryDocStore, type DocStoreOp } from './memory-doc-store.js';
export { createMemoryObjectStore, type MemoryObjectStore, type MemoryObject, type ObjectStoreOp } from './memory-object-store.js';
