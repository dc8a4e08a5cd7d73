import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { FoldState, RunState, type Run } from '@cvc/proto';
import { startLocalCluster } from '@cvc/cli/testing';
import type { NatsClusterNode } from '@cvc/messaging';
import { assertNoSecretsInLogs, getRun, importFashion, isFinal, runClient, storeOf, submitFashionRun, until } from './helpers.js';

interface StreamDetail {
  name: string;
  config: { num_replicas: number };
  cluster?: { leader?: string };
  consumer_detail?: { name: string; config: { num_replicas?: number } }[];
}

/** The streams a node holds, from its monitoring endpoint (/jsz with account, stream and consumer details). */
async function streamsOn(node: NatsClusterNode): Promise<Map<string, StreamDetail>> {
  const res = await fetch(`http://127.0.0.1:${node.monitorPort}/jsz?accounts=true&streams=true&config=true&consumers=true`);
  const body = (await res.json()) as { account_details?: { stream_detail?: StreamDetail[] }[] };
  return new Map((body.account_details ?? []).flatMap((a) => a.stream_detail ?? []).map((s) => [s.name, s]));
}

/**
 * The run, or undefined while the coordinator answers UNAVAILABLE: while a node is down or a leader is being
 * elected, a KV read can time out, and UNAVAILABLE is the coordinator telling clients to retry.
 */
async function pollRun(c: ReturnType<typeof runClient>, runId: string): Promise<Run | undefined> {
  try {
    return await getRun(c, runId);
  } catch (err) {
    if ((err as ServiceError).code === status.UNAVAILABLE) return undefined;
    throw err;
  }
}

const totalReports = (r: Run): number => r.folds.reduce((n, f) => n + f.epochReports, 0);
// Ended: a final state (FINALIZING is not final: the summary and encoder are still being written).
const ended = (r: Run): boolean => isFinal(r);

test('3 nats-servers with R3 streams and KV: a follower and later the meta leader are SIGKILLed mid-run; the run completes, every epoch reported once, nothing lost', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cvc-e2e-nats-ha-'));
  const folds = 3;
  const epochs = 3;
  const cluster = await startLocalCluster({ dir, workers: 2, backend: 'wasm', ackWaitMs: 10_000, natsNodes: 3 });
  const c = runClient(cluster);
  const nats = cluster.natsCluster;
  try {
    assert.ok(nats, 'natsNodes: 3 starts a NATS cluster');
    assert.equal(cluster.endpoints.natsUrl, nats.url);
    assert.equal(nats.urls.length, 3);
    const clusterFile = JSON.parse(await readFile(join(dir, 'cluster.json'), 'utf8')) as { natsUrl: string };
    assert.deepEqual(clusterFile.natsUrl.split(','), nats.urls, 'cluster.json lists every node');

    await importFashion(cluster, folds, 300);
    const runId = await submitFashionRun(cluster, folds, epochs);

    // The services made the task stream, its consumer and the run bucket with 3 copies (CVC_NATS_REPLICAS=3).
    const streams = await until(
      'the task stream and the run bucket',
      () => streamsOn(nats.nodes[0] as NatsClusterNode),
      (m) => m.has('CVC_TASKS') && m.has('KV_cvc_runs'),
      60_000,
    );
    assert.equal(streams.get('CVC_TASKS')?.config.num_replicas, 3);
    assert.equal(streams.get('KV_cvc_runs')?.config.num_replicas, 3);
    assert.equal(streams.get('CVC_TASKS')?.consumer_detail?.find((x) => x.name === 'workers')?.config.num_replicas, 3);

    // 1. A node that is not the meta leader dies once epochs are being reported.
    const first = await until(
      'an epoch reported',
      () => pollRun(c, runId),
      (r): r is Run => r !== undefined && totalReports(r) >= 1,
      180_000,
    );
    assert.ok(first);
    assert.ok(!ended(first), 'the first kill lands mid-run');
    const leader0 = await nats.metaLeader();
    const follower = nats.nodes.find((n) => n.name !== leader0);
    assert.ok(leader0 && follower);
    await follower.kill();
    // With 2 of 3 up the cluster keeps quorum: training goes on.
    const withOneDown = await until(
      'another epoch reported with one node down',
      () => pollRun(c, runId),
      (r): r is Run => r !== undefined && totalReports(r) > totalReports(first),
      180_000,
    );
    assert.ok(withOneDown);
    // Quorum allows one loss at a time: the follower is back and caught up before the leader goes.
    await follower.start();
    assert.ok(await follower.healthy(), `${follower.name} rejoined and caught up`);

    // 2. The JetStream meta leader dies.
    const leaderName = await nats.metaLeader();
    const leader = nats.nodes.find((n) => n.name === leaderName);
    assert.ok(leader, `meta leader ${leaderName} is a node`);
    const atLeaderKill = await until(
      'the run, before the leader is killed',
      () => pollRun(c, runId),
      (r): r is Run => r !== undefined,
      60_000,
    );
    assert.ok(atLeaderKill);
    assert.ok(!ended(atLeaderKill) && totalReports(atLeaderKill) < folds * epochs, 'the second kill lands mid-run, with epochs left to report');
    await leader.kill();
    t.diagnostic(
      `epoch reports: ${totalReports(first)} at the follower's kill, ${totalReports(withOneDown)} with it down, ${totalReports(atLeaderKill)} of ${folds * epochs} at the meta leader's kill`,
    );
    const newLeader = await until(
      'a new meta leader',
      () => nats.metaLeader(),
      (l) => l !== undefined && l !== leader.name,
      60_000,
    );
    assert.notEqual(newLeader, leader.name);

    const done = await until(
      'the run to finish',
      () => pollRun(c, runId),
      (r) => r !== undefined && ended(r),
      300_000,
    );
    assert.ok(done);
    assert.equal(done.state, RunState.RUN_STATE_SUCCEEDED, done.error);
    const store = storeOf(cluster);
    for (const f of done.folds) {
      assert.equal(f.state, FoldState.FOLD_STATE_SUCCEEDED, `fold ${f.fold}`);
      assert.equal(f.epochReports, epochs, `fold ${f.fold}: every epoch reported exactly once (${f.attempts} attempts)`);
      assert.deepEqual(
        f.history.map((h) => h.epoch),
        Array.from({ length: epochs }, (_, i) => i + 1),
      );
      const keys = await store.list(`runs/${runId}/fold-${f.fold}/checkpoints/`);
      const wanted = Array.from({ length: epochs }, (_, i) => `runs/${runId}/fold-${f.fold}/checkpoints/epoch-${String(i + 1).padStart(4, '0')}.ckpt`);
      assert.deepEqual(keys.sort(), wanted, `fold ${f.fold}: every checkpoint stored`);
      assert.ok(await store.stat(`runs/${runId}/fold-${f.fold}/best/attempt-${f.attempts}.ckpt`));
    }
    assert.ok(done.summary?.encoder, 'the run was finalised: summary and encoder');
    assert.ok(await store.stat(`runs/${runId}/summary.json`));
    t.diagnostic(`attempts per fold: ${done.folds.map((f) => f.attempts).join(', ')}`);
    // The nats-servers' logs (DIR/logs/nats-n*.log) carry no password either.
    assert.ok((await assertNoSecretsInLogs(cluster)) > 0);
  } finally {
    c.close();
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
