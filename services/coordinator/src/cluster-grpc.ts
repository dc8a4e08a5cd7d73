import type { Server, ServerWritableStream } from '@grpc/grpc-js';
import {
  ClusterJobServiceService,
  ClusterWorkerServiceService,
  type Chunk,
  type ClusterJobRef,
  type ClusterJobServiceServer,
  type ClusterWorkerServiceServer,
  type DownloadClusterArtifactRequest,
} from '@cvc/proto';
import type { ClusterJobs } from './cluster-jobs.js';
import { unary, type Guard, type GrpcCallObserver } from './grpc-server.js';
import { watchHandler, writeChunks, type FailStream } from './grpc-streams.js';
import { pageFields } from './paging.js';
import type { WatchSlots } from './watch-slots.js';

/** Adds ClusterJobService (users) and ClusterWorkerService (workers) over `jobs` to `server`. */
export function addClusterServices(server: Server, jobs: ClusterJobs, guard: Guard, observe: GrpcCallObserver, fail: FailStream, watches?: WatchSlots): void {
  const user: ClusterJobServiceServer = {
    submitClusterJob: unary('SubmitClusterJob', 'user', guard, (r) => jobs.submit(r.spec), observe),
    getClusterJob: unary('GetClusterJob', 'user', guard, (r) => jobs.get(r.jobId), observe),
    listClusterJobs: unary(
      'ListClusterJobs',
      'user',
      guard,
      async (r) => {
        const page = await jobs.listPage(r);
        return { jobs: page.items, ...pageFields(page.items, page.remaining) };
      },
      observe,
    ),
    cancelClusterJob: unary('CancelClusterJob', 'user', guard, (r) => jobs.cancel(r.jobId), observe),
    watchClusterJob: watchHandler('WatchClusterJob', guard, fail, (r: ClusterJobRef, send, signal) => jobs.watch(r.jobId, send, signal), watches),
    downloadClusterArtifact: (call: ServerWritableStream<DownloadClusterArtifactRequest, Chunk>) => {
      void (async () => {
        try {
          guard(call.metadata, 'user', 'DownloadClusterArtifact');
          const { size, stream } = await jobs.openArtifact(call.request.jobId, call.request.name);
          await writeChunks(call, size, stream);
          call.end();
        } catch (err) {
          fail(call, err);
        }
      })();
    },
  };
  const worker: ClusterWorkerServiceServer = {
    startClusterAttempt: unary('StartClusterAttempt', 'worker', guard, (r) => jobs.startAttempt(r), observe),
    reportClusterProgress: unary('ReportClusterProgress', 'worker', guard, (r) => jobs.reportProgress(r.attempt, r.progress), observe),
    finishClusterJob: unary(
      'FinishClusterJob',
      'worker',
      guard,
      async (r) => {
        await jobs.finish(r);
        return { stop: false, reason: '' };
      },
      observe,
    ),
  };
  server.addService(ClusterJobServiceService, user);
  server.addService(ClusterWorkerServiceService, worker);
}
