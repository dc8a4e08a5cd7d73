import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

/** The repository root and its deploy/ folder. */
export const repoRoot = resolve(fileURLToPath(import.meta.url), '../../../..');
export const deployDir = join(repoRoot, 'deploy');

/** One object of a kustomize build, as plain JSON. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

/** `kubectl kustomize deploy/PATH`, parsed (fails the test, naming the overlay, when it does not build). */
export function kustomizeBuild(path: string): K8sObject[] {
  const r = spawnSync('kubectl', ['kustomize', join(deployDir, path)], { encoding: 'utf8' });
  assert.equal(r.status, 0, `kubectl kustomize ${path}: ${r.error?.message ?? r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as K8sObject);
}

/** The overlays an operator applies (and the base they share). */
export const OVERLAYS = ['k8s/base', 'k8s/overlays/gpu', 'k8s/overlays/cpu', 'k8s/overlays/ha'] as const;
