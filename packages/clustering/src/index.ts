export { kmeans, type Points, type KMeansOptions, type KMeansResult } from './kmeans.js';
export { confusionMatrix, hungarian, hungarianAccuracy, purity, nmi, ari, scoreClustering } from './scores.js';
export { KL_EPSILON, softAssignment, targetDistribution, klDivergence, argmaxRows, changedShare, stopDecision, type StopReason } from './dec-math.js';
