/** What cvc knows about each canonical dataset: files, checksums, classes. */
export interface RemoteFile {
  /** File name on disk (and at the end of each mirror URL). */
  readonly file: string;
  /** SHA-256 of the file as downloaded, lowercase hex. */
  readonly sha256: string;
  /** Size in bytes as downloaded. */
  readonly bytes: number;
}

export interface DatasetInfo {
  readonly name: string;
  readonly format: 'idx' | 'cifar10';
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  readonly classNames: readonly string[];
  /** Base URLs tried in order; a file's URL is base + file. */
  readonly mirrors: readonly string[];
  readonly downloads: readonly RemoteFile[];
  /** Directories where a system package installs the files (searched after the cache). */
  readonly systemDirs: readonly string[];
}

const idxFiles = (sums: [string, number, string][]): RemoteFile[] => sums.map(([file, bytes, sha256]) => ({ file, bytes, sha256 }));

export const DATASETS: Readonly<Record<string, DatasetInfo>> = {
  mnist: {
    name: 'mnist',
    format: 'idx',
    height: 28,
    width: 28,
    channels: 1,
    classNames: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    mirrors: ['https://ossci-datasets.s3.amazonaws.com/mnist/', 'https://storage.googleapis.com/cvdf-datasets/mnist/'],
    downloads: idxFiles([
      ['train-images-idx3-ubyte.gz', 9912422, '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609'],
      ['train-labels-idx1-ubyte.gz', 28881, '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c'],
      ['t10k-images-idx3-ubyte.gz', 1648877, '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6'],
      ['t10k-labels-idx1-ubyte.gz', 4542, 'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6'],
    ]),
    systemDirs: ['/usr/share/datasets/mnist'],
  },
  'fashion-mnist': {
    name: 'fashion-mnist',
    format: 'idx',
    height: 28,
    width: 28,
    channels: 1,
    classNames: ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'],
    mirrors: ['http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/'],
    downloads: idxFiles([
      ['train-images-idx3-ubyte.gz', 26421880, '3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84'],
      ['train-labels-idx1-ubyte.gz', 29515, 'a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845'],
      ['t10k-images-idx3-ubyte.gz', 4422102, '346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073'],
      ['t10k-labels-idx1-ubyte.gz', 5148, '67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5'],
    ]),
    // Debian's dataset-fashion-mnist (recompressed, so checked by structure, not by the download hash).
    systemDirs: ['/usr/share/datasets/fashion-mnist'],
  },
  'cifar-10': {
    name: 'cifar-10',
    format: 'cifar10',
    height: 32,
    width: 32,
    channels: 3,
    classNames: ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'],
    mirrors: ['https://www.cs.toronto.edu/~kriz/'],
    downloads: [{ file: 'cifar-10-binary.tar.gz', bytes: 170052171, sha256: 'c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd' }],
    systemDirs: [],
  },
};

/** IDX file names, raw or with `.gz`. */
export const IDX_FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
} as const;

/** The five CIFAR-10 training batches (the seed's folds) and the test batch. */
export const CIFAR_TRAIN_BATCHES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
export const CIFAR_TEST_BATCH = 'test_batch.bin';

export function datasetInfo(name: string): DatasetInfo | undefined {
  return Object.prototype.hasOwnProperty.call(DATASETS, name) ? DATASETS[name] : undefined;
}
