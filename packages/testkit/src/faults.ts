/** Errors queued per operation: each call of the operation takes (and throws) the first. */
export type FaultPlan<Op extends string> = Map<Op, Error[]>;

/** Removes and returns the next error queued for `op`, if any. */
export function takeFault<Op extends string>(plan: FaultPlan<Op>, op: Op): Error | undefined {
  const list = plan.get(op);
  const err = list?.shift();
  if (list && list.length === 0) plan.delete(op);
  return err;
}
