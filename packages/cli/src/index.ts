export { main, HELP, type MainOptions } from './main.js';
export { runLocalCv, type LocalCvOptions, type LocalCvResult } from './cv-local.js';
export { renderSummary } from './cv-cmd.js';
export { cliEnvFromProcess, type CliEnv } from './env.js';
export { importToStore, type ImportHooks } from './s3-import.js';
export { resolveCluster, runServiceClient, clusterChannel, type ClusterEndpoints } from './cluster-config.js';
export { LocalLockError, type LocalLockCode } from './local-lock.js';
export { RemoteError } from './rpc.js';
