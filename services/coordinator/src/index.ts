export { Coordinator, type CoordinatorDeps, type CoordinatorObserver } from './coordinator.js';
export { CoordinatorError, FinalizeError, type FinalizeCode } from './errors.js';
export { exportRunArtifacts, holdExport, type ArtifactExporter, type ExportInput } from './export-artifacts.js';
export { createGrpcServer, bindServer, toStatus, MAX_MESSAGE_BYTES } from './grpc-server.js';
export { coordinatorConfigFromEnv, type CoordinatorConfig } from './config.js';
export { main } from './main.js';
export type { RunDoc } from './run-doc.js';
