export { Coordinator, type CoordinatorDeps, type CoordinatorObserver } from './coordinator.js';
export { CoordinatorError, FinalizeError, UploadsBusyError, type FinalizeCode, type Outcome } from './errors.js';
export { exportRunArtifacts, type ArtifactExporter, type ExportInput } from './export-artifacts.js';
export { createGrpcServer, bindServer } from './grpc-server.js';
export { WatchSlots } from './watch-slots.js';
export { toStatus } from './to-status.js';
export { coordinatorConfigFromEnv, coordinatorConfigSchema, type CoordinatorConfig } from './config.js';
export { main } from './main.js';
export type { RunDoc } from './run-doc.js';
