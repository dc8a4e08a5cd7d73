// taskMsgId: the message ids JetStream deduplicates tasks by (no server needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { taskMsgId } from './task-queue.js';

test('a resume task id is unique per pause (the attempt count at release) and stable for a retried publish; old tasks keep their id', () => {
  assert.equal(taskMsgId({ runId: 'r', fold: 1 }), 'r.1');
  assert.equal(taskMsgId({ runId: 'r', fold: 1, jobId: 'j' }), 'job.j');
  assert.equal(taskMsgId({ runId: 'r', fold: 1, resumeAt: 3, attempts: 1 }), 'r.1.r3.a1');
  assert.equal(taskMsgId({ runId: 'r', fold: 1, resumeAt: 3, attempts: 1 }), taskMsgId({ runId: 'r', fold: 1, resumeAt: 3, attempts: 1 }));
  assert.notEqual(taskMsgId({ runId: 'r', fold: 1, resumeAt: 3, attempts: 2 }), taskMsgId({ runId: 'r', fold: 1, resumeAt: 3, attempts: 1 }));
  // A task published before `attempts` existed (still in the stream, or decoded from it).
  assert.equal(taskMsgId(JSON.parse('{"runId":"r","fold":1,"resumeAt":3}') as { runId: string; fold: number; resumeAt: number }), 'r.1.r3');
  assert.equal(taskMsgId({ runId: 'r', fold: 1, resumeAt: 0, attempts: 4 }), 'r.1', 'resumeAt 0 is a first task');
});
