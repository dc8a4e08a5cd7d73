export { kmeans, kmeansAsync, type Points, type KMeansOptions, type KMeansResult } from './kmeans.js';
export { type StepOptions } from './steps.js';
export { confusionMatrix, hungarian, hungarianAccuracy, purity, nmi, ari, scoreClustering } from './scores.js';
export { gmm, gmmAsync, type GmmOptions, type GmmModel, type Covariance } from './gmm.js';
export { umapEmbed, type UmapOptions, type UmapResult, type UmapProgress } from './umap.js';
export { ClusteringError, type ClusteringErrorCode } from './errors.js';
export { KL_EPSILON, softAssignment, targetDistribution, klDivergence, argmaxRows, changedShare, stopDecision, type StopReason } from './dec-math.js';
export { withContext, type WithContext } from './context.js';
