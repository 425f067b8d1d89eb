"""Installs manifold_dynamics; the version is read from the package."""

import os
import re

import setuptools

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version() -> str:
  with open(os.path.join(HERE, 'manifold_dynamics', '__init__.py')) as f:
    return re.search(r"^__version__ = '([^']+)'", f.read(), re.M).group(1)


setuptools.setup(
    name='manifold_dynamics',
    version=read_version(),
    description='Inversion dynamics of class manifolds during training, in JAX.',
    long_description=open(os.path.join(HERE, 'README.md')).read()
    if os.path.exists(os.path.join(HERE, 'README.md'))
    else '',
    long_description_content_type='text/markdown',
    packages=setuptools.find_packages(include=['manifold_dynamics', 'manifold_dynamics.*']),
    python_requires='>=3.10',
    install_requires=[
        'absl-py>=2.0',
        'flax>=0.10',
        'jax>=0.5',
        'jaxlib>=0.5',
        'matplotlib>=3.7',
        'numpy>=1.26',
        'optax>=0.2.4',
        'pillow>=9',  # decodes the CIFAR-10 PNG batches
        'scipy>=1.11',
    ],
    extras_require={
        # pytest-xdist: `make test` runs the suite on up to 4 cores.
        'test': ['pytest>=8', 'pytest-xdist>=3'],
        # `make lint`; pinned, since each release formats a little differently.
        'lint': ['pyink==26.5.1', 'ruff==0.17.6'],
        # Building MNIST & co. with TFDS needs TensorFlow (about 1.4 GB): see README.
        'tfds': ['tensorflow-datasets>=4.9', 'tensorflow-cpu>=2.16', 'protobuf>=6.31.1,<7'],
        # The label-error tools compared with the stragglers (experiments/audit.py --cleanlab).
        'compare': ['cleanlab>=2.6'],
    },
)
