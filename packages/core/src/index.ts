export { CvcError, ConfigError, CancelledError, throwIfAborted, describeError } from './errors.js';
export { createRng, deriveSeed, shuffleInPlace, permutation, type Rng } from './random.js';
export { meanStd, type MeanStd } from './stats.js';
export { createJsonLogger, silentLogger, type Logger, type LogLevel } from './logger.js';
export { resolveOptions } from './options.js';
export { describeIssue } from './zod-issue.js';
export { pathExists, isFileNotFound } from './fs.js';
export { retry, createBackoff, backoffDelay, type RetryOptions, type RetryDecision, type RetryEvent, type Backoff } from './retry.js';
