"""Readers (and, for tests and tools, writers) of the original file formats.

IDX (MNIST, Fashion-MNIST, KMNIST): big-endian magic 0x0000TTDD with type code TT (0x08 =
unsigned byte) and DD dimensions, then DD big-endian uint32 sizes, then the data. Files may be
raw or gzip-compressed; a '.gz' suffix or the gzip magic selects decompression.
"""

import gzip
import hashlib
import os
import struct

import numpy as np

from manifold_dynamics.errors import UserError

_IDX_DTYPES = {0x08: np.dtype('>u1'), 0x09: np.dtype('>i1'), 0x0B: np.dtype('>i2'),
               0x0C: np.dtype('>i4'), 0x0D: np.dtype('>f4'), 0x0E: np.dtype('>f8')}
_GZIP_MAGIC = b'\x1f\x8b'


def read_bytes(path: str) -> bytes:
  """The (decompressed, if gzip) bytes of a file."""
  with open(path, 'rb') as f:
    raw = f.read()
  if raw[:2] == _GZIP_MAGIC:
    try:
      return gzip.decompress(raw)
    except (OSError, EOFError) as e:
      raise UserError(f'{path} is a truncated or corrupt gzip file ({e}); delete it and '
                      f'fetch it again.') from None
  return raw


def sha256_hex(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def parse_idx(data: bytes, path: str = '<bytes>') -> np.ndarray:
  """Decodes IDX bytes to an array (native byte order)."""
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
    raise UserError(f'{path} is not an IDX file (bad magic number); delete it and fetch it '
                    f'again.')
  dtype, ndim = _IDX_DTYPES[data[2]], data[3]
  header = 4 + 4 * ndim
  if len(data) < header:
    raise UserError(f'{path} is truncated (incomplete IDX header); delete it and fetch it '
                    f'again.')
  shape = struct.unpack(f'>{ndim}I', data[4:header])
  expected = header + int(np.prod(shape)) * dtype.itemsize
  if len(data) != expected:
    raise UserError(f'{path} is truncated or malformed: {len(data)} bytes, the IDX header '
                    f'{shape} needs {expected}; delete it and fetch it again.')
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
