import { fineTuneClustering } from '@cvc/model';

export type { FineTuneOptions, FineTuneProgress, FineTuneResult } from '@cvc/model';

/** The clustering fine-tune a worker runs (`fineTuneClustering` of @cvc/model; tests hand in a fake). */
export type FineTuneFn = typeof fineTuneClustering;

/** The worker's default fine-tune. */
export const defaultFineTune: FineTuneFn = fineTuneClustering;
