/** One flag of a command, as its help shows it. */
export interface FlagHelp {
  readonly flag: string;
  readonly text: string;
  /** The default, when the flag has one. */
  readonly default?: string;
}

/** The help of one subcommand: `cvc <name> --help`. */
export interface CommandHelp {
  readonly usage: string;
  readonly summary: string;
  readonly flags: readonly FlagHelp[];
  readonly example: string;
}

/** The model flags of `cvc cv --local` and `cvc run submit` (packages/cli/src/model-flags.ts). */
const MODEL_FLAGS: FlagHelp[] = [
  {
    flag: '--model NAME',
    text: "seed-mnist (28x28x1, 10-unit code), seed-cifar (32x32x3, 128-unit code) or cae (a convolutional autoencoder on the dataset's shape, see --filters)",
  },
  { flag: '--model-config FILE', text: 'the autoencoder as a JSON config (README: autoencoder configurations); checked against the dataset before training' },
  { flag: '--filters F1,F2,..', text: 'cae: filters of each encoder block; every block but the last max-pools 2x2', default: '32,64,128' },
  { flag: '--code-size N', text: 'cae: units of the code (the encoder output)', default: '32' },
  { flag: '--kernel K', text: 'cae: kernel size of every convolution', default: '3' },
  { flag: '--dense U1,U2,..', text: 'cae: hidden dense layers between the feature map and the code', default: 'none' },
  { flag: '--init I', text: 'cae: glorot-uniform, he (he-normal) or he-uniform', default: 'glorot-uniform' },
  { flag: '--loss L', text: 'cae: mse, mse-cosine or bce', default: 'mse' },
  { flag: '--output-activation A', text: 'cae: relu, sigmoid or linear', default: 'relu' },
  { flag: '--upsample M', text: 'nearest or bilinear (merged into a config that sets none)', default: 'nearest' },
];

const CLUSTER: FlagHelp = {
  flag: '--cluster FILE',
  text: 'the cluster to talk to (or CVC_COORDINATOR, CVC_TOKEN, CVC_TLS_CA and CVC_S3_*)',
  default: '.cvc/local/cluster.json',
};
/** `--cluster` of embed and cluster: only a --dataset that is neither built in, a directory nor a local import is read from it. */
const IMPORTED_CLUSTER: FlagHelp = {
  flag: '--cluster FILE',
  text: '--dataset NAME imported into a cluster (not built in, not a directory): the cluster whose S3 holds it (or CVC_COORDINATOR, CVC_S3_*)',
  default: '.cvc/local/cluster.json',
};
/** --limit and --all of the paged list commands (list-pages.ts). */
const LIST_PAGE_FLAGS: FlagHelp[] = [
  { flag: '--limit N', text: 'print at most N entries, newest first; a line on stderr says how many more there are', default: '50' },
  { flag: '--all', text: 'print every entry (follows the pages)' },
];
const JSON_FLAG: FlagHelp = { flag: '--json', text: 'print the result as JSON on stdout (every field, zero values included)' };

/** Every subcommand's help, by its name (`run submit`, `embed`, ...). */
export const COMMAND_HELP: Readonly<Record<string, CommandHelp>> = {
  'dataset list': {
    usage: 'cvc dataset list [--json]',
    summary:
      "Lists every dataset imported into the cluster's object store: each version with its image shape, image count (with the test split's), folds and fold scheme.",
    flags: [JSON_FLAG, CLUSTER],
    example: 'cvc dataset list',
  },
  'dataset inspect': {
    usage: 'cvc dataset inspect NAME|PATH|IMPORT [--json]',
    summary:
      'Counts, image shape and class histogram of a dataset (mnist, fashion-mnist, cifar-10 or a directory), or of an import: a directory written by dataset import --out DIR, or a dataset imported into the cluster (per fold and test shard).',
    flags: [JSON_FLAG, { flag: '--cluster FILE', text: 'the cluster whose imports a NAME is looked up in', default: '.cvc/local/cluster.json' }],
    example: 'cvc dataset inspect fashion-mnist',
  },
  'dataset download': {
    usage: 'cvc dataset download NAME',
    summary: 'Downloads mnist, fashion-mnist or cifar-10 into CVC_CACHE_DIR, verifying every sha256.',
    flags: [],
    example: 'cvc dataset download fashion-mnist',
  },
  'dataset import': {
    usage: 'cvc dataset import NAME|PATH|FOLDER [--name NAME] [--out DIR] [options]',
    summary:
      "Splits a dataset (or a folder of images: class subfolders = labels, test/ = test split) into K fold shards plus a test shard and writes them, with a manifest, into the cluster's S3 (or into --out DIR).",
    flags: [
      { flag: '--folds K', text: 'number of folds', default: '5' },
      { flag: '--seed S', text: 'seed of the fold assignment (and of the test fraction)', default: '42' },
      { flag: '--fold-scheme S', text: 'stratified or seed (built-in datasets)', default: 'stratified' },
      { flag: '--limit N', text: 'a seeded, stratified subset of N training images (and at most N test images; built-in datasets)' },
      { flag: '--name NAME', text: 'import FOLDER, a folder of PNG/JPEG/WebP/TIFF/GIF images, as dataset NAME' },
      { flag: '--size HxW', text: 'resize every image to H x W (image folders)', default: "the images' own size, when they all have one" },
      { flag: '--channels 1|3', text: 'greyscale or RGB (image folders)', default: 'greyscale when every image is, RGB when every image is colour' },
      { flag: '--fit MODE', text: 'cover (crop), contain (letterbox) or fill (stretch) (image folders)', default: 'cover' },
      { flag: '--test-fraction F', text: 'seeded, stratified test share when the folder has no test/ subfolder', default: '0.1' },
      { flag: '--skip-invalid', text: 'skip (and list) undecodable, empty or truncated files, symlink loops and links out of the folder instead of failing' },
      { flag: '--out DIR', text: "write the shards into DIR instead of the cluster's S3" },
      CLUSTER,
    ],
    example: 'cvc dataset import ./photos --name photos --size 32x32 --channels 3 --folds 5',
  },
  cv: {
    usage: 'cvc cv --local --dataset NAME|PATH --model seed-mnist|seed-cifar|cae [cae flags] | --model-config FILE [options]',
    summary:
      "Runs a whole K-fold cross-validation in this process, folds one after another, and writes the best fold's encoder to OUT/encoder; re-running resumes.",
    flags: [
      { flag: '--local', text: 'train in this process (cluster runs: cvc run submit)' },
      {
        flag: '--dataset NAME|PATH',
        text: 'mnist, fashion-mnist, cifar-10, a directory of IDX files / CIFAR-10 batches, or an import written by cvc dataset import FOLDER --name N --out DIR (your images: its folds as imported)',
      },
      ...MODEL_FLAGS,
      { flag: '--folds K', text: 'number of folds', default: "5; an import's own" },
      { flag: '--epochs N', text: 'epochs per fold', default: '100' },
      { flag: '--batch-size N', text: 'batch size', default: '32' },
      { flag: '--limit N', text: 'use N training images (seeded, stratified) and at most N test images (built-in datasets)' },
      { flag: '--fold-scheme S', text: "stratified or seed (the seed's random equal folds) (built-in datasets)", default: 'stratified' },
      { flag: '--seed S', text: 'seed for folds, initialisation and batch order', default: '42' },
      { flag: '--learning-rate LR', text: 'Adam learning rate', default: '1e-4' },
      { flag: '--backend B', text: 'auto, tensorflow, wasm or cpu', default: 'auto' },
      { flag: '--threads N', text: 'threads of the wasm backend', default: 'the cores' },
      { flag: '--out DIR', text: 'output directory; re-running resumes', default: 'runs/MODEL-DATASET' },
      JSON_FLAG,
      { flag: '--verbose', text: 'debug logs on stderr' },
    ],
    example: 'cvc cv --local --dataset fashion-mnist --model seed-mnist --folds 5 --epochs 2 --limit 1000',
  },
  'local up': {
    usage: 'cvc local up [--workers N] [--dir DIR] [--nats-nodes N]',
    summary: 'Starts nats-server, an S3 server, the coordinator and N workers on loopback until Ctrl-C; one cluster per directory.',
    flags: [
      { flag: '--workers N', text: 'worker processes (0..256)', default: 'the number of CPU cores' },
      { flag: '--dir DIR', text: 'state, logs, credentials and cluster.json', default: '.cvc/local' },
      {
        flag: '--nats-nodes N',
        text: 'nats-servers in a JetStream cluster (1..5); with 3 every stream and the run KV keep 3 copies (CVC_NATS_REPLICAS=N), so losing one server loses nothing',
        default: '1',
      },
      { flag: '--backend B', text: "the workers' TensorFlow.js backend: auto, tensorflow, wasm or cpu", default: 'auto' },
      { flag: '--ack-wait-ms MS', text: 'a fold task is redelivered after this long without a heartbeat', default: '60000' },
    ],
    example: 'cvc local up --workers 2',
  },
  'run submit': {
    usage: 'cvc run submit --dataset NAME --model M [cae flags] | --model-config FILE [options]',
    summary: 'Submits a K-fold cross-validation run to the cluster; with --watch, follows it to the end.',
    flags: [
      { flag: '--dataset NAME', text: 'a dataset imported with cvc dataset import' },
      ...MODEL_FLAGS,
      {
        flag: '--folds K',
        text: 'number of folds (the dataset must be imported with this K)',
        default: "the import's (of --dataset-version, else the newest)",
      },
      { flag: '--epochs N', text: 'epochs per fold', default: '100' },
      { flag: '--batch-size N', text: 'batch size', default: '32' },
      { flag: '--learning-rate LR', text: 'Adam learning rate', default: '1e-4' },
      { flag: '--seed S', text: 'seed of initialisation and batch order', default: '42' },
      { flag: '--name NAME', text: 'a human name for the run' },
      { flag: '--dataset-version V', text: 'an imported version of the dataset', default: 'the newest with K folds' },
      { flag: '--watch', text: 'follow the run: a progress bar per fold, inside epochs too' },
      JSON_FLAG,
      CLUSTER,
    ],
    example: 'cvc run submit --dataset fashion-mnist --model seed-mnist --folds 5 --epochs 2 --watch',
  },
  'run watch': {
    usage: 'cvc run watch RUN [--json]',
    summary: 'Follows a run until it ends: per fold, epochs done and, inside the epoch, images done, images/s and ETA. Ctrl-C stops watching, not the run.',
    flags: [JSON_FLAG, CLUSTER],
    example: 'cvc run watch r-20261201-abc123',
  },
  'run show': {
    usage: 'cvc run show RUN [--json]',
    summary: "A run's folds, their progress inside the current epoch, losses and summary.",
    flags: [JSON_FLAG, CLUSTER],
    example: 'cvc run show r-20261201-abc123 --json',
  },
  'run list': {
    usage: 'cvc run list [--limit N | --all] [--json]',
    summary: 'The runs of the cluster, newest first: the 50 newest unless --limit or --all; says how many more there are.',
    flags: [...LIST_PAGE_FLAGS, JSON_FLAG, CLUSTER],
    example: 'cvc run list',
  },
  'run cancel': {
    usage: 'cvc run cancel RUN [--json]',
    summary: 'Cancels a run; its workers stop after the current batch.',
    flags: [JSON_FLAG, CLUSTER],
    example: 'cvc run cancel r-20261201-abc123',
  },
  'sweep submit': {
    usage: 'cvc sweep submit --dataset NAME (--model M | --model-config FILE) --grid NAME=V1,V2,.. [--grid ..] [options]',
    summary:
      'Submits a sweep: one K-fold cross-validation run per configuration of the grid, sharing the workers; fold-aware ASHA (or median stopping) stops the runs whose mean validation loss over all their folds is among the worst at a rung.',
    flags: [
      { flag: '--dataset NAME', text: 'a dataset imported with cvc dataset import' },
      ...MODEL_FLAGS,
      {
        flag: '--grid NAME=V1,V2,..',
        text: 'a swept parameter and its values (repeatable; the grid is every combination): learning-rate, batch-size, epochs, seed, upsample, model, or a model-config field: code-size, kernel, filters (32x64x128), dense (128x64 or none), init, loss, output-activation, output-kernel, flatten/dense/code-activation',
      },
      { flag: '--random N', text: 'run N configurations sampled from the grid (without replacement) instead of all' },
      { flag: '--seed S', text: "the runs' training seed and, with --random, the sampling's", default: '42' },
      { flag: '--folds K', text: 'folds of every run (the dataset must be imported with this K)', default: "the import's" },
      { flag: '--epochs N', text: 'epochs per fold', default: '100' },
      { flag: '--batch-size N', text: 'batch size (unless swept)', default: '32' },
      { flag: '--learning-rate LR', text: 'Adam learning rate (unless swept)', default: '1e-4' },
      { flag: '--early-stop M', text: 'asha, median or none', default: 'asha' },
      { flag: '--rungs E1,E2,..', text: 'epoch counts at which runs are judged (each below --epochs)', default: '1, eta, eta^2, ... below --epochs' },
      { flag: '--reduction-factor ETA', text: 'ASHA: the best 1/ETA of the runs judged at a rung go on', default: '3' },
      { flag: '--max-parallel-runs N', text: 'runs in flight at once', default: 'all' },
      { flag: '--name NAME', text: 'a human name for the sweep (and its runs)' },
      { flag: '--dataset-version V', text: 'an imported version of the dataset', default: 'the newest with K folds' },
      { flag: '--watch', text: 'follow the sweep to its end, then print the ranked table' },
      JSON_FLAG,
      CLUSTER,
    ],
    example:
      'cvc sweep submit --dataset fashion-mnist --model cae --grid learning-rate=1e-3,3e-4,1e-4 --grid code-size=10,32 --folds 5 --epochs 9 --rungs 1,3 --watch',
  },
  'sweep watch': {
    usage: 'cvc sweep watch SWEEP [--json]',
    summary:
      'Follows a sweep until it ends: per configuration, its state, the epochs all its folds reached and its current score; each rung decision as it is made. Exit 0 when the sweep succeeded. Ctrl-C stops watching, not the sweep.',
    flags: [JSON_FLAG, CLUSTER],
    example: 'cvc sweep watch lr-20261201-122735-268107',
  },
  'sweep show': {
    usage: 'cvc sweep show SWEEP [--json]',
    summary:
      "A sweep's runs ranked by mean +- std validation loss over folds (finished runs first, the best marked *), with state, epochs reached and the rung and score that stopped a stopped run; then the rung decisions.",
    flags: [JSON_FLAG, CLUSTER],
    example: 'cvc sweep show lr-20261201-122735-268107',
  },
  'sweep list': {
    usage: 'cvc sweep list [--limit N | --all] [--json]',
    summary: 'The sweeps of the cluster, newest first (the 50 newest unless --limit or --all), with state, trial counts and best score.',
    flags: [...LIST_PAGE_FLAGS, JSON_FLAG, CLUSTER],
    example: 'cvc sweep list',
  },
  'sweep cancel': {
    usage: 'cvc sweep cancel SWEEP [--json]',
    summary: "Cancels a sweep: its queued runs never start, its running runs' workers stop after the current batch.",
    flags: [JSON_FLAG, CLUSTER],
    example: 'cvc sweep cancel lr-20261201-122735-268107',
  },
  'secrets init': {
    usage: 'cvc secrets init --out DIR [--names a,b,...]',
    summary: "A private CA, the coordinator's TLS certificate, user and worker tokens and a NATS password, for a Kubernetes deployment.",
    flags: [
      { flag: '--out DIR', text: 'where the files go (refused when it holds credentials already)' },
      {
        flag: '--names a,b',
        text: "DNS names and IP addresses of the coordinator's certificate",
        default: 'cvc-coordinator, its cluster DNS names, localhost, 127.0.0.1',
      },
    ],
    example: 'cvc secrets init --out deploy/secrets',
  },
  'encoder fetch': {
    usage: 'cvc encoder fetch RUN|SWEEP [--fold best|K] [--by val-loss|cluster-acc] [--out DIR]',
    summary:
      "Downloads a finished fold's best checkpoint through the coordinator and writes its encoder as a TensorFlow.js layers model with metadata. A sweep id fetches from the sweep's best run.",
    flags: [
      { flag: '--fold best|K', text: 'which fold', default: 'best' },
      { flag: '--by val-loss|cluster-acc', text: 'how the best fold is chosen (not with --fold K)', default: 'val-loss' },
      { flag: '--out DIR', text: 'output directory', default: 'encoders/RUN (or encoders/SWEEP)' },
      CLUSTER,
    ],
    example: 'cvc encoder fetch r-20261201-abc123 --out encoders/best',
  },
  embed: {
    usage: 'cvc embed --encoder DIR (--dataset NAME|PATH | --images DIR) --out FILE.npy|FILE.csv [options]',
    summary:
      "The codes of a dataset's split or of a folder of images under an encoder: .npy (plus FILE.labels.npy and FILE.paths.csv) or CSV (path, codes, label, class).",
    flags: [
      { flag: '--encoder DIR', text: 'a directory written by cvc encoder fetch' },
      { flag: '--dataset NAME|PATH', text: 'the images to embed: a dataset (mnist, fashion-mnist, cifar-10 or a directory of their files)' },
      { flag: '--images DIR', text: 'or a folder of PNG/JPEG/WebP/TIFF/GIF images (class subfolders give labels), resized to the encoder input' },
      {
        flag: '--fit cover|contain|fill',
        text: '--images: how each image is fitted to the encoder input; cover (crop), contain (letterbox) or fill (stretch)',
        default: "the fit recorded in the encoder's metadata.json, else cover",
      },
      { flag: '--skip-invalid', text: '--images: skip undecodable files, listing each with its reason (default: fail naming the file)' },
      { flag: '--split S', text: '--dataset: test or train', default: 'test' },
      { flag: '--limit N', text: '--dataset: a seeded, stratified subset of N images' },
      { flag: '--batch-size N', text: 'images per inference batch', default: '256' },
      { flag: '--out FILE', text: 'FILE.npy or FILE.csv (its directory must exist)' },
      IMPORTED_CLUSTER,
    ],
    example: 'cvc embed --encoder encoders/best --images ./photos --out codes.npy',
  },
  cluster: {
    usage: 'cvc cluster --encoder DIR (--dataset NAME|PATH | --images DIR) [options]',
    summary:
      'k-means (or UMAP + a Gaussian mixture, ...) on the codes: a cluster for each image in OUT/assignments.csv (path, cluster, distance or confidence, label, class); with labels, accuracy (Hungarian matching), NMI, ARI and purity.',
    flags: [
      { flag: '--encoder DIR', text: 'a directory written by cvc encoder fetch' },
      { flag: '--dataset NAME|PATH', text: 'the images to cluster: a dataset (mnist, fashion-mnist, cifar-10 or a directory of their files)' },
      { flag: '--images DIR', text: 'or a folder of PNG/JPEG/WebP/TIFF/GIF images (class subfolders give labels), resized to the encoder input' },
      {
        flag: '--fit cover|contain|fill',
        text: '--images: how each image is fitted to the encoder input; cover (crop), contain (letterbox) or fill (stretch)',
        default: "the fit recorded in the encoder's metadata.json, else cover",
      },
      { flag: '--skip-invalid', text: '--images: skip undecodable files, listing each with its reason (default: fail naming the file)' },
      { flag: '--out DIR', text: 'where assignments.csv goes', default: 'clusters' },
      {
        flag: '--copy-to DIR',
        text: 'arrange the images into DIR/cluster-00/, cluster-01/, ... (hard links where possible, else copies; originals untouched)',
      },
      { flag: '--force', text: '--copy-to into a non-empty DIR: replaces only what cvc wrote there before, never another file' },
      { flag: '--split S', text: '--dataset: test or train', default: 'test' },
      { flag: '--k K', text: 'clusters (at least 2)', default: '10' },
      { flag: '--n-init N', text: 'k-means restarts, the lowest inertia wins (also the start of --assign gmm)', default: '100' },
      { flag: '--seed S', text: 'seed of the restarts', default: '0' },
      { flag: '--limit N', text: '--dataset: a seeded, stratified subset of N images' },
      { flag: '--batch-size N', text: 'images per inference batch', default: '256' },
      { flag: '--baseline', text: 'also k-means on the raw pixels' },
      {
        flag: '--manifold umap',
        text: 'UMAP the codes (umap-js, seeded) before the assignment, as N2D does; with --baseline the pixels go through it too',
        default: 'none',
      },
      { flag: '--umap-dims N', text: '--manifold umap: dimensions of the embedding', default: '10' },
      { flag: '--neighbors N', text: '--manifold umap: neighbours per point in its graph', default: '20' },
      { flag: '--min-dist D', text: '--manifold umap: minimum distance in the layout (0 packs clusters tight)', default: '0' },
      { flag: '--umap-sample N', text: '--manifold umap: fit on a seeded sample of N images and transform the rest (faster for large sets)', default: 'all' },
      {
        flag: '--umap-context N',
        text: '--manifold umap with --dataset: UMAP and the assignment also see N seeded images of the other split (transductive, as N2D fits all 70,000); only the clustered images are written and scored',
        default: 'none',
      },
      { flag: '--assign kmeans|gmm', text: 'k-means, or a Gaussian mixture (EM; the CSV then holds its probability)', default: 'kmeans' },
      { flag: '--covariance full|diag', text: '--assign gmm: covariance of each component', default: 'full' },
      {
        flag: '--dec-centres',
        text: 'refine the k-means centres with DEC: centres only, the encoder is not fine-tuned (for DEC/IDEC/DCEC fine-tuning submit `cvc cluster-job submit`); the CSV then holds its confidence',
      },
      { flag: '--confusion FILE.png', text: 'write the confusion matrix as a picture (its directory must exist)' },
      {
        flag: '--report DIR',
        text: 'write pictures of the clusters into DIR: a grid per cluster (most and least confident members), a 2-D map of the codes, the confusion matrix, and report.md with the scores of every method',
      },
      JSON_FLAG,
      IMPORTED_CLUSTER,
    ],
    example: 'cvc cluster --encoder encoders/best --images ./photos --k 10 --copy-to ./sorted',
  },
  'cluster-job submit': {
    usage: 'cvc cluster-job submit RUN --method dcec|idec|dec [--fold best|K] [options]',
    summary:
      "Fine-tunes a run's encoder with a clustering loss on a worker: DEC (KL only), IDEC or DCEC (KL + gamma x reconstruction), centres from k-means on the codes, the target refreshed every --update-interval batches, stopping when fewer than --tol of the assignments change. With --watch, follows it to the end.",
    flags: [
      { flag: '--method M', text: 'dcec, idec or dec' },
      { flag: '--fold best|K', text: 'the source fold', default: 'best (lowest validation loss)' },
      { flag: '--k K', text: 'clusters', default: "the dataset's class count, else 10" },
      { flag: '--gamma G', text: 'idec/dcec: weight of the reconstruction loss', default: '0.1' },
      { flag: '--update-interval N', text: 'batches between refreshes of the target distribution', default: '140' },
      { flag: '--tol T', text: 'stop when fewer than this share of assignments change between refreshes', default: '0.001' },
      { flag: '--max-iterations N', text: 'bound on training batches', default: '20000' },
      { flag: '--batch-size N', text: 'batch size', default: "the worker's (256)" },
      { flag: '--learning-rate LR', text: 'Adam learning rate', default: "the worker's" },
      { flag: '--seed S', text: 'seed of the k-means start and batch order' },
      { flag: '--dataset NAME', text: 'the imported dataset to cluster', default: "the run's" },
      { flag: '--dataset-version V', text: 'an imported version of it', default: 'the newest' },
      { flag: '--name NAME', text: 'a human name for the job' },
      { flag: '--watch', text: 'follow the job (exit 0 when it succeeds, 1 otherwise)' },
      JSON_FLAG,
      CLUSTER,
    ],
    example: 'cvc cluster-job submit r-20261201-abc123 --method dcec --k 10 --watch',
  },
  'cluster-job watch': {
    usage: 'cvc cluster-job watch JOB [--json]',
    summary:
      'Follows a clustering job until it ends: iterations done of the bound, loss, share of assignments changed, accuracy/NMI when labels exist. Exit 0 when it succeeds, 1 when it fails or is cancelled; Ctrl-C stops watching, not the job (exit 130).',
    flags: [JSON_FLAG, CLUSTER],
    example: 'cvc cluster-job watch j-20261201-abc123',
  },
  'cluster-job show': {
    usage: 'cvc cluster-job show JOB [--json]',
    summary: 'A clustering job: its spec, state, attempts, the latest progress reports, its result (scores before and after) and how it resumed.',
    flags: [JSON_FLAG, CLUSTER],
    example: 'cvc cluster-job show j-20261201-abc123',
  },
  'cluster-job list': {
    usage: 'cvc cluster-job list [--limit N | --all] [--json]',
    summary: 'The clustering jobs, newest first (the 50 newest unless --limit or --all), with state, method, source run and fold, progress and accuracy.',
    flags: [...LIST_PAGE_FLAGS, JSON_FLAG, CLUSTER],
    example: 'cvc cluster-job list',
  },
  'cluster-job cancel': {
    usage: 'cvc cluster-job cancel JOB [--json]',
    summary: 'Cancels a clustering job; its worker stops after the current batch.',
    flags: [JSON_FLAG, CLUSTER],
    example: 'cvc cluster-job cancel j-20261201-abc123',
  },
  'cluster-job fetch': {
    usage: 'cvc cluster-job fetch JOB [--out DIR] [--report DIR]',
    summary:
      "Downloads a succeeded job's fine-tuned encoder (model.json, weights.bin: cvc cluster --encoder DIR reads it) and assignments.csv, each sha256-checked, plus metadata.json.",
    flags: [
      { flag: '--out DIR', text: 'output directory', default: 'cluster-jobs/JOB' },
      {
        flag: '--report DIR',
        text: "also draw the job's clusters: a picture per cluster, a 2-D map of the fine-tuned codes, the confusion matrix, report.md with the scores before and after",
      },
      CLUSTER,
    ],
    example: 'cvc cluster-job fetch j-20261201-abc123 --out encoders/dcec --report reports/dcec',
  },
  report: {
    usage: 'cvc report RUN [--out DIR]',
    summary: "A finished run's pictures (test images, reconstructions, loss curves) and a Markdown summary.",
    flags: [{ flag: '--out DIR', text: 'output directory', default: 'reports/RUN' }, CLUSTER],
    example: 'cvc report r-20261201-abc123',
  },
};

/** The text of `cvc <name> --help`. */
export function renderCommandHelp(name: string, h: CommandHelp): string {
  const width = Math.max(...h.flags.map((f) => f.flag.length), 0);
  const flags = h.flags.map((f) => `  ${f.flag.padEnd(width)}  ${f.text}${f.default !== undefined ? ` (default: ${f.default})` : ''}`);
  return [
    `Usage: ${h.usage}`,
    '',
    h.summary,
    '',
    ...(flags.length ? ['Flags:', ...flags, '  -h, --help'.padEnd(width + 2) + '  this help', ''] : []),
    'Example:',
    `  ${h.example}`,
    '',
    `(cvc ${name}: Ctrl-C stops it and exits 130)`,
    '',
  ].join('\n');
}

/**
 * The help `argv` asks for (`cvc run submit --help`, `cvc help run submit`,
 * `cvc run --help`), or undefined when it asks for none. A group (`run`)
 * lists its subcommands.
 */
export function helpFor(argv: readonly string[]): string | undefined {
  const asked = argv[0] === 'help' || argv.includes('--help') || argv.includes('-h');
  if (!asked) return undefined;
  const words = (argv[0] === 'help' ? argv.slice(1) : argv).filter((a) => !a.startsWith('-'));
  const two = words.slice(0, 2).join(' ');
  const one = words[0] ?? '';
  const cmd = COMMAND_HELP[two] ?? COMMAND_HELP[one];
  if (cmd) return renderCommandHelp(COMMAND_HELP[two] ? two : one, cmd);
  const group = Object.entries(COMMAND_HELP).filter(([n]) => n.startsWith(`${one} `));
  if (one && group.length > 0)
    return [`cvc ${one} subcommands:`, ...group.map(([, h]) => `  ${h.usage}`), '', `cvc ${one} SUBCOMMAND --help for its flags and an example.`, ''].join(
      '\n',
    );
  return undefined;
}
