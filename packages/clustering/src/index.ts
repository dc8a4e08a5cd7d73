export { kmeans, type Points, type KMeansOptions, type KMeansResult } from './kmeans.js';
export { confusionMatrix, hungarian, hungarianAccuracy, purity, nmi, ari, scoreClustering } from './scores.js';
