import type { ClusterSummary } from './cluster-summary.js';

/** One clustering method's scores against the true classes (those it has), and its run time. */
export interface MethodScore {
  readonly name: string;
  /** Hungarian-matched accuracy, 0-1. */
  readonly acc?: number;
  readonly nmi?: number;
  readonly ari?: number;
  readonly seconds?: number;
}

/** What report.md is written from. */
export interface ClusterReportText {
  readonly title: string;
  readonly n: number;
  readonly k: number;
  readonly methods: readonly MethodScore[];
  readonly method?: string;
  readonly clusters: readonly ClusterSummary[];
  readonly classNames?: readonly string[];
  readonly files: { readonly map: string; readonly confusion?: string; readonly clusters: readonly string[] };
  readonly coordsName: string;
  readonly what: string;
  readonly codeSize?: number;
  readonly paths?: readonly string[];
}

const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
const pct = (x: number): string => (Number.isFinite(x) ? `${Math.round(x * 100)}%` : '–');

/** The score table: one row per method, one column per score, the best of each column in bold. */
export function scoreTable(methods: readonly MethodScore[]): string {
  const cols = [
    { key: 'acc', head: 'accuracy', higher: true, digits: 4 },
    { key: 'nmi', head: 'NMI', higher: true, digits: 4 },
    { key: 'ari', head: 'ARI', higher: true, digits: 4 },
    { key: 'seconds', head: 'seconds', higher: false, digits: 2 },
  ] as const;
  const best = cols.map((c) => {
    const vs = methods.map((m) => m[c.key]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
    return vs.length > 1 ? (c.higher ? Math.max(...vs) : Math.min(...vs)) : undefined;
  });
  const lines = [`| method | ${cols.map((c) => c.head).join(' | ')} |`, `| --- | ${cols.map(() => '---:').join(' | ')} |`];
  for (const m of methods) {
    const vals = cols.map((c, j) => {
      const v = m[c.key];
      if (typeof v !== 'number' || !Number.isFinite(v)) return '–';
      const s = v.toFixed(c.digits);
      return v === best[j] ? `**${s}**` : s;
    });
    lines.push(`| ${cell(m.name)} | ${vals.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** report.md of a cluster report. */
export function clusterReportMarkdown(t: ClusterReportText): string {
  const out: string[] = [`# ${t.title}`, ''];
  const labelled = t.classNames !== undefined;
  const classes = labelled ? `, ${t.classNames?.length} true classes` : ', no true classes';
  out.push(`${t.n} images, ${t.k} clusters${classes}.${t.method ? ` The pictures show the clusters of **${cell(t.method)}**.` : ''}`, '');
  out.push('## Scores', '');
  if (t.methods.length) out.push(scoreTable(t.methods), '');
  else out.push('No method was scored (no true classes to score against).', '');
  if (t.methods.length && !labelled) out.push('No true classes: accuracy, NMI and ARI cannot be computed.', '');
  const of = t.codeSize !== undefined ? `the ${t.codeSize}-d ${t.what}` : `the ${t.what}`;
  out.push('## Map', '', `![2-D map](${t.files.map})`, '');
  out.push(`${t.coordsName} of ${of} to 2 dimensions, coloured by cluster${labelled ? ' (left) and by true class (right)' : ''}.`, '');
  if (t.files.confusion) {
    out.push('## Confusion matrix', '', `![confusion matrix](${t.files.confusion})`, '');
    out.push(
      'Rows: clusters, in the order of the classes the Hungarian matching gives them; columns: true classes. Outlined: the matched cells, whose sum is the accuracy.',
      '',
    );
  }
  out.push('## Clusters', '');
  const name = (c: number): string => (c >= 0 ? (t.classNames?.[c] ?? `class ${c}`) : '–');
  out.push(labelled ? '| cluster | images | matched class | share | majority class | share | picture |' : '| cluster | images | picture |');
  out.push(labelled ? '| ---: | ---: | --- | ---: | --- | ---: | --- |' : '| ---: | ---: | --- |');
  t.clusters.forEach((s, i) => {
    const file = t.files.clusters[i] ?? '';
    const link = `[${file}](${file})`;
    out.push(
      labelled
        ? `| ${s.cluster} | ${s.members.length} | ${cell(name(s.matchedClass))} | ${pct(s.matchedShare)} | ${cell(name(s.majorityClass))} | ${pct(s.majorityShare)} | ${link} |`
        : `| ${s.cluster} | ${s.members.length} | ${link} |`,
    );
  });
  out.push('');
  out.push(
    `Each picture shows a cluster's most confident members, then a row of its least confident${labelled ? ", captioned with their true class (red: not the class most of the cluster's images have)" : ''}.`,
    '',
  );
  t.clusters.forEach((s, i) => {
    const file = t.files.clusters[i] ?? '';
    out.push(`### Cluster ${s.cluster}`, '', `![cluster ${s.cluster}](${file})`, '');
    if (t.paths && s.members.length) {
      const least = s.members.slice(-Math.min(5, s.members.length)).reverse();
      out.push(`Least confident: ${least.map((m) => `\`${cell(t.paths?.[m] ?? String(m))}\``).join(', ')}`, '');
    }
  });
  return out.join('\n');
}
