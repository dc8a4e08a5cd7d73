export { main, HELP } from './main.js';
export { runLocalCv, type LocalCvOptions, type LocalCvResult } from './cv-local.js';
export { renderSummary } from './cv-cmd.js';
export { cliEnvFromProcess, type CliEnv } from './env.js';
export { captureEnv } from './testing.js';
export { startLocalCluster, type LocalCluster, type LocalClusterOptions } from './local-cluster.js';
export { importToStore } from './s3-import.js';
export { resolveCluster, runServiceClient, clusterChannel, type ClusterEndpoints } from './cluster-config.js';
