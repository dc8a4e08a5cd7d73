import { CvcError } from '@cvc/core';

/** What can be wrong with what a chart or a report is asked to draw. */
export type ReportErrorCode = 'BAD_INPUT' | 'RENDER_FAILED';

/** A chart or report could not be drawn; `field` names the input that was wrong. */
export class ReportError extends CvcError<ReportErrorCode> {}
