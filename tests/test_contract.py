"""Any Flax model through the contract: K classes, mini-batches, the shipped CNN and ResNet,
and the MLP's fast path against the generic one."""

import dataclasses
import itertools

import flax.linen as nn
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from manifold_dynamics.config import TrainConfig
from manifold_dynamics.data.task import Task
from manifold_dynamics.engine import contract, difficulty, geometry, models, train
from manifold_dynamics.engine.models import layers as model_layers
from manifold_dynamics.engine.models.cnn import CNN
from manifold_dynamics.engine.models.mlp import FusedMLP
from manifold_dynamics.errors import UserError
from manifold_dynamics.records import store
from tests.conftest import make_image_splits
from tests.test_resume import assert_histories_equal, assert_states_equal, interrupt_after

SMALL = dict(seeds=2, epochs=6, lr=0.1)
# Each model's own settings, small.
SETTINGS = {
    'mlp': dict(width=4),
    'cnn': dict(channels=(2, 3), width=4),
    'resnet': dict(width=2),
    'vit': dict(patch=4, dim=8, depth=1, heads=2),
}


def small(model='mlp', **kwargs):
  """A small TrainConfig of `model` (SMALL, the model's SETTINGS; `kwargs` override both,
  model settings by name)."""
  own = {k: kwargs.pop(k) for k in list(kwargs) if k in ('depth', 'width', 'channels', 'blocks')}
  return TrainConfig(model=model, model_settings={**SETTINGS[model], **own}, **{**SMALL, **kwargs})


@pytest.fixture(scope='module')
def images():
  """Tiny 8 x 8 images of ten classes: (x_train, y_train, x_test, y_test)."""
  x_train, y_train, x_test, y_test = make_image_splits(60, 24, shape=(8, 8))
  return x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64)


def task_of(images, task='parity', **kwargs):
  return Task.from_arrays(*images, task=task, **kwargs)


# --- geometry of K classes ------------------------------------------------------------------


def pair_sum_reference(h, labels, num_classes):
  """float64 SPEC §4/§8 definitions: R_k from the O(n^2) pair sum, D_kl between centroids."""
  h = np.asarray(h, np.float64)
  h = h / np.linalg.norm(h, axis=1, keepdims=True)
  radii, centroids = [], []
  for k in range(num_classes):
    m = h[labels == k]
    diff = m[:, None, :] - m[None, :, :]
    radii.append(np.sqrt(np.sum(diff**2) / (2 * len(m) ** 2)))
    centroids.append(m.mean(axis=0))
  pairs = zip(*np.triu_indices(num_classes, 1))
  d = [np.linalg.norm(centroids[a] - centroids[b]) for a, b in pairs]
  return np.array(radii), np.array(d)


@pytest.mark.parametrize('feature_axis', [-1, 0])
def test_multiclass_geometry_against_the_pair_sum(feature_axis):
  rng = np.random.default_rng(0)
  h = rng.normal(size=(40, 6)).astype(np.float32)
  labels = np.arange(40) % 4
  r_ref, d_ref = pair_sum_reference(h, labels, 4)
  geo = geometry.multiclass_geometry(
      h if feature_axis == -1 else h.T, labels, 4, None, feature_axis
  )
  np.testing.assert_allclose(geo.R_class, r_ref, rtol=1e-5)
  np.testing.assert_allclose(geo.D_class, d_ref, rtol=1e-5)
  np.testing.assert_allclose(geo.R_mean, r_ref.mean(), rtol=1e-5)
  np.testing.assert_allclose(geo.D_mean, d_ref.mean(), rtol=1e-5)


def test_two_classes_reduce_to_r_plus_r_minus_d():
  rng = np.random.default_rng(1)
  h = rng.normal(size=(30, 5)).astype(np.float32)
  classes = rng.integers(0, 2, 30)
  binary = geometry.class_geometry(h, np.where(classes == 0, 1, -1))
  multi = geometry.multiclass_geometry(h, classes, 2)
  np.testing.assert_allclose(multi.R_class, [binary.R_plus, binary.R_minus], rtol=1e-6)
  np.testing.assert_allclose(multi.D_class, [binary.D], rtol=1e-6)


def test_multiclass_geometry_is_permutation_invariant_and_weighted():
  rng = np.random.default_rng(2)
  h = rng.normal(size=(24, 3)).astype(np.float32)
  labels = np.arange(24) % 3
  perm = rng.permutation(24)
  a = geometry.multiclass_geometry(h, labels, 3)
  b = geometry.multiclass_geometry(h[perm], labels[perm], 3)
  np.testing.assert_allclose(a.R_class, b.R_class, rtol=1e-6)
  w = (np.arange(24) < 12).astype(np.float32)  # weight 0 = pruned: as if absent
  c = geometry.multiclass_geometry(h, labels, 3, w)
  d = geometry.multiclass_geometry(h[:12], labels[:12], 3)
  np.testing.assert_allclose(c.R_class, d.R_class, rtol=1e-6)
  np.testing.assert_allclose(c.D_class, d.D_class, rtol=1e-6)


# --- the MLP: fast path and contract ----------------------------------------------------------


def test_mlp_through_the_contract_equals_the_fast_path(images):
  data = train.TrainData.from_task(task_of(images))
  cfg = small(depth=3, layers='all')
  fast, fast_state = train.fit(cfg, data, log=None, return_state=True)
  generic_model = models.build(cfg, 2)
  generic, generic_state = train.fit(cfg, data, log=None, return_state=True, model=generic_model)
  assert isinstance(train.network(cfg, data), FusedMLP)
  assert isinstance(train.network(cfg, data, generic_model), contract.ModuleNetwork)
  for name, value in fast.arrays().items():
    if name != 'mistakes_packed':
      np.testing.assert_allclose(getattr(generic, name), value, rtol=2e-5, atol=1e-6, err_msg=name)
  np.testing.assert_array_equal(generic.mistakes_packed, fast.mistakes_packed)
  for a, b in zip(
      jax.tree.leaves(fast_state.train.params), jax.tree.leaves(generic_state.train.params)
  ):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


def test_classes_with_k_2_on_parity_labels_equals_the_parity_task(images):
  x_train, y_train, x_test, y_test = images
  parity = task_of(images)
  # labels 0 = even, 1 = odd: all K = 2 classes of them are the parity task
  classes = Task.from_arrays(x_train, y_train % 2, x_test, y_test % 2, task='classes')
  assert classes.num_classes == 2
  np.testing.assert_array_equal(classes.y_train, parity.y_train)
  cfg = small()
  a = train.fit(cfg, train.TrainData.from_task(parity), log=None)
  b = train.fit(cfg, train.TrainData.from_task(classes), log=None)
  assert_histories_equal(a, b)


def test_batch_size_p_is_full_batch_bit_for_bit(images):
  data = train.TrainData.from_task(task_of(images))
  cfg = small()
  full = train.fit(cfg, data, log=None)
  assert_histories_equal(train.fit(dataclasses.replace(cfg, batch_size=60), data, log=None), full)


# --- K classes, mini-batches, conv models ------------------------------------------------------


def test_ten_classes_record_per_class_geometry(images):
  data = train.TrainData.from_task(task_of(images, 'classes'))
  assert data.num_classes == 10
  history = train.fit(small(), data, log=None)
  assert history.observables == ('R_mean', 'D_mean') and history.R_plus is None
  assert history.R_class.shape == (2, 7, 10) and history.D_class.shape == (2, 7, 45)
  np.testing.assert_allclose(history.R_mean, history.R_class.mean(-1), rtol=1e-6)
  np.testing.assert_allclose(history.D_mean, history.D_class.mean(-1), rtol=1e-6)
  assert history.loss[0, -1] < history.loss[0, 0]


@pytest.mark.parametrize('model', ['cnn', 'resnet'])
def test_conv_models_record_every_named_layer(images, model):
  data = train.TrainData.from_task(task_of(images))
  assert data.input_shape == (8, 8, 1)
  cfg = small(model, layers='all', epochs=2)
  names = train.measured_layers(cfg, data)
  expected = {
      'cnn': ['conv_0', 'conv_1', 'dense_0'],
      'resnet': ['stem', 'stage0_block0', 'stage1_block0', 'stage2_block0', 'pool'],
  }[model]
  assert names == expected
  history = train.fit(cfg, data, log=None)
  assert history.layer_R_plus.shape == (2, 3, len(names))
  assert np.all(np.isfinite(history.layer_D)) and np.all(history.layer_R_plus > 0)
  np.testing.assert_array_equal(history.layer_R_plus[..., 0], history.R_plus)


def test_one_run_measures_conv_layers_flattened_and_pooled(images):
  """--layers=all,all:pooled: every layer flattened, then every feature map averaged over
  space, each the same numbers as a run that measures it only that way."""
  data = train.TrainData.from_task(task_of(images))
  cfg = small('cnn', epochs=2, layers='all,all:pooled')
  names = train.measured_layers(cfg, data)
  assert names == ['conv_0', 'conv_1', 'dense_0', 'conv_0:pooled', 'conv_1:pooled']
  both = train.fit(cfg, data, log=None)
  flat = train.fit(dataclasses.replace(cfg, layers='all'), data, log=None)
  pooled = train.fit(dataclasses.replace(cfg, layers='all', pooled=True), data, log=None)
  np.testing.assert_array_equal(both.layer_R_plus[..., :3], flat.layer_R_plus)
  np.testing.assert_array_equal(both.layer_D[..., 3:], pooled.layer_D[..., :2])
  assert train.measured_layers(small('cnn', layers='dense_0,conv_1:pooled'), data) == [
      'dense_0',
      'conv_1:pooled',
  ]
  with pytest.raises(UserError, match="'dense_0:pooled', but dense_0 is not a feature map"):
    train.measured_layers(small('cnn', layers='dense_0:pooled'), data)
  with pytest.raises(UserError, match='selects no layer of this model'):
    train.measured_layers(small('mlp', layers='all:pooled', batch_size=8), data)


def test_minibatches_are_per_seed_and_reproducible(images):
  # the batches are drawn by the trainer, whatever the model: the MLP checks them at a fraction
  # of a conv net's compile time (mini-batches take the contract, as a conv net's do)
  data = train.TrainData.from_task(task_of(images))
  cfg = small('mlp', batch_size=16)
  both = train.fit(cfg, data, log=None)
  again = train.fit(cfg, data, log=None)
  assert_histories_equal(both, again)
  # seed 1 trained alone draws the same batches as beside seed 0 (XLA may round a vmap of
  # one differently from a vmap of two, as on the fast path: float rounding, never a batch)
  alone = train.fit(
      dataclasses.replace(cfg, seeds=1), data, log=None, keys=train.seed_keys(cfg.seed, 2)[1:]
  )
  beside = both.select([1])
  for name, value in alone.arrays().items():
    if name != 'mistakes_packed':
      np.testing.assert_allclose(value, getattr(beside, name), rtol=1e-5, atol=1e-6, err_msg=name)
  np.testing.assert_array_equal(alone.mistakes_packed, beside.mistakes_packed)
  # and the batches differ from full batch
  full = train.fit(dataclasses.replace(cfg, batch_size=None), data, log=None)
  assert not np.allclose(full.loss[:, -1], both.loss[:, -1])


def test_minibatch_resume_is_bit_identical(images, tmp_path):
  data = train.TrainData.from_task(task_of(images, 'classes'))
  cfg = small('mlp', batch_size=16, chunk_epochs=2, epochs=6)
  reference, ref_state = train.fit(cfg, data, log=None, return_state=True)
  path = tmp_path / 'history'
  new_store = lambda: store.HistoryStore(str(path), np.arange(60))
  with pytest.raises(Exception, match='SIGTERM received'):
    train.fit(cfg, data, log=interrupt_after(2), store=new_store())
  history, state = train.fit(cfg, data, log=None, store=new_store(), return_state=True)
  assert_histories_equal(history, reference)
  assert_states_equal(state, ref_state)


def test_a_users_own_module(images):
  class Tiny(nn.Module):

    @nn.compact
    def __call__(self, x):
      h = nn.tanh(nn.Conv(3, (3, 3))(x))
      self.sow('intermediates', 'features', h)
      return nn.Dense(10)(h.reshape((h.shape[0], -1)))

  data = train.TrainData.from_task(task_of(images, 'classes'))
  cfg = small(layers='features', epochs=2)
  history = train.fit(cfg, data, log=None, model=Tiny())
  assert history.R_mean.shape == (2, 3) and np.all(np.isfinite(history.R_mean))


def test_parameter_count_from_shapes():
  cnn = CNN((2, 3), 4, num_outputs=10)
  # conv 3*3*1*2+2, conv 3*3*2*3+3, dense (2*2*3)*4+4, readout 4*10+10
  assert model_layers.count_params(cnn, (8, 8, 1)) == 20 + 57 + 52 + 50


# --- bad input ---------------------------------------------------------------------------------


def test_bad_models_and_layers(images):
  data = train.TrainData.from_task(task_of(images))

  class WrongOutputs(nn.Module):

    @nn.compact
    def __call__(self, x):
      self.sow('intermediates', 'h', x)
      return nn.Dense(3)(x.reshape((x.shape[0], -1)))

  class NoSow(nn.Module):

    @nn.compact
    def __call__(self, x):
      return nn.Dense(2)(x.reshape((x.shape[0], -1)))

  cfg = small()
  with pytest.raises(UserError, match=r'logits \(batch, K\) = \(B, 2\)'):
    train.fit(cfg, data, log=None, model=WrongOutputs())
  with pytest.raises(UserError, match='sows no representation'):
    train.fit(cfg, data, log=None, model=NoSow())
  with pytest.raises(
      UserError, match="names 'conv_9', which the model does not sow; it sows conv_0"
  ):
    train.fit(dataclasses.replace(cfg, model='cnn', layers='conv_9'), data, log=None)
  with pytest.raises(UserError, match='unknown --model'):
    train.check(TrainConfig(model='transformer'))
  with pytest.raises(UserError, match='--cnn_channels takes comma-separated integers'):
    train.check(TrainConfig(model='cnn', model_settings=dict(channels=('a',))))
  with pytest.raises(UserError, match='--resnet_blocks must be positive'):
    train.check(TrainConfig(model='resnet', model_settings=dict(blocks=0)))
  with pytest.raises(UserError, match="--model=cnn has no setting 'depth'; its settings are"):
    train.check(TrainConfig(model='cnn', model_settings=dict(depth=3)))


@pytest.mark.parametrize('batch_size', [0, -3])
def test_non_positive_batch_size(batch_size):
  with pytest.raises(UserError, match='--batch_size must be positive'):
    TrainConfig(batch_size=batch_size)


def test_batch_size_beyond_p(images):
  data = train.TrainData.from_task(task_of(images))
  with pytest.raises(UserError, match='--batch_size=61 exceeds the 60 training examples'):
    train.fit(small(batch_size=61), data, log=None)


def test_grand_per_example_gradients_equal_the_closed_form(images):
  """GraNd through the contract (vmap of grad) against the MLP's closed form, and every other
  score from the same logits, on the same nets."""
  data = train.TrainData.from_task(task_of(images))
  cfg = small(depth=3, scores=('all',), score_epochs=(0, 3), eval_batch_size=16)
  _, fast = train.fit(cfg, data, log=None, return_state=True)
  model = models.build(cfg, 2)
  _, generic = train.fit(cfg, data, log=None, return_state=True, model=model)
  a = difficulty.finalize(fast.scores, cfg.score_epochs)
  b = difficulty.finalize(generic.scores, cfg.score_epochs)
  assert set(a) == set(b) and {'grand_t0', 'grand_t3', 'aum', 'forgetting_events'} <= set(a)
  for name in a:
    np.testing.assert_allclose(b[name], a[name], rtol=2e-4, atol=1e-5, err_msg=name)


def test_scores_on_ten_classes_with_minibatches(images):
  data = train.TrainData.from_task(task_of(images, 'classes'))
  cfg = small(scores=('all',), score_epochs=(2,), batch_size=16)
  _, state = train.fit(cfg, data, log=None, return_state=True)
  columns = difficulty.finalize(state.scores, cfg.score_epochs)
  assert columns['grand_t2'].shape == (2, 60) and np.all(columns['grand_t2'] > 0)
  assert np.all((columns['confidence'] > 0) & (columns['confidence'] < 1))


def products(model, shape):
  """The dtypes of the operands of every matrix product and convolution of model's forward."""
  x = jnp.zeros((2,) + shape)
  params = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)  # shapes only
  jaxpr = jax.make_jaxpr(lambda p: model.apply(p, x))(params)
  found = []

  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name in ('dot_general', 'conv_general_dilated'):
        found.append(tuple(str(v.aval.dtype) for v in eqn.invars))
      for sub in jax.extend.core.jaxprs_in_params(eqn.params):
        walk(sub)

  walk(jaxpr.jaxpr)
  return found


@pytest.mark.parametrize('model', models.NAMES)
def test_bfloat16_reaches_every_product_of_every_model(model):
  for precision, dtype in (('bfloat16', 'bfloat16'), ('float32', 'float32')):
    module = models.build(small(model, matmul_precision=precision), 10)
    found = products(module, (8, 8, 1))
    assert found and all(d == (dtype, dtype) for d in found), (model, precision, found)


@pytest.mark.slow  # the jaxpr test above checks every model's products fast
def test_bfloat16_products_train_a_conv_net_close_to_float32(images):
  data = train.TrainData.from_task(task_of(images, 'classes'))
  cfg = small('cnn', epochs=2)
  full = train.fit(cfg, data, log=None)
  low = train.fit(dataclasses.replace(cfg, matmul_precision='bfloat16'), data, log=None)
  assert not np.array_equal(low.R_mean, full.R_mean)
  np.testing.assert_allclose(low.R_mean, full.R_mean, atol=3e-2)
  np.testing.assert_allclose(low.loss, full.loss, rtol=3e-2)


def test_bfloat16_is_refused_for_a_users_own_module(images):
  data = train.TrainData.from_task(task_of(images, 'classes'))
  with pytest.raises(UserError, match='a module of your own sets its own'):
    train.fit(small(matmul_precision='bfloat16'), data, log=None, model=models.build(small(), 10))


def test_nonfinite_values_never_reach_the_records(images):
  """A diverging mini-batch run raises, with its partial history, rather than recording NaN."""
  data = train.TrainData.from_task(task_of(images, 'classes'))
  cfg = small('mlp', batch_size=8, lr=1e4, epochs=4)
  with pytest.raises(train.DivergenceError, match='lower --lr'):
    train.fit(cfg, data, log=None)


def test_every_combination_of_task_and_path_is_finite(images):
  """parity, pair and classes, full and mini-batch, through fast path and contract."""
  for task, batch in itertools.product(['parity', 'pair:2,7', 'classes'], [None, 8]):
    data = train.TrainData.from_task(task_of(images, task))
    history = train.fit(small(batch_size=batch, epochs=2), data, log=None)
    for name, value in history.arrays().items():
      if name == 'test_error_class':  # NaN for a class with no test example, by design
        present = np.isin(np.arange(value.shape[-1]), np.asarray(data.y_test))
        value = value[..., present]
      assert np.all(np.isfinite(value)), (task, batch, name)


def test_standardised_inputs_reach_the_model(images):
  """The contract standardises each input feature on T (SPEC §1) before the model: a model
  that sows its own input records the geometry of the host-standardised images."""

  class Identity(nn.Module):

    @nn.compact
    def __call__(self, x):
      self.sow('intermediates', 'input', x)
      return nn.Dense(2)(x.reshape((x.shape[0], -1)))

  task = task_of(images)
  data = train.TrainData.from_task(task)
  history = train.fit(small(epochs=1), data, log=None, model=Identity())
  x = np.asarray(task.x_train, np.float64)
  std = x.std(0)
  standardised = np.where(std > 0, (x - x.mean(0)) / np.where(std > 0, std, 1), 0.0)
  reference = geometry.class_geometry(standardised.astype(np.float32), task.y_train)
  for name in ('R_plus', 'R_minus', 'D'):
    np.testing.assert_allclose(getattr(history, name)[:, 0], getattr(reference, name), rtol=1e-5)


@pytest.mark.parametrize('impl', ['shifted', 'im2col', 'patches'])
@pytest.mark.parametrize(
    'kernel, strides, size', [(3, 1, (9, 8)), (3, 2, (8, 8)), (3, 2, (7, 9)), (1, 2, (8, 6))]
)
def test_every_convolution_equals_xla_s(kernel, strides, size, impl):
  """Each CPU convolution (sums of slices times matrices, one product of the windows, JAX's
  patches) against XLA's, 'SAME' padding: outputs and gradients."""
  x = jax.random.normal(jax.random.PRNGKey(1), (3,) + size + (4,))
  xla = model_layers.Conv(5, kernel=kernel, strides=strides, impl='xla')
  params = xla.init(jax.random.PRNGKey(0), x)
  other = model_layers.Conv(5, kernel=kernel, strides=strides, impl=impl)
  np.testing.assert_allclose(other.apply(params, x), xla.apply(params, x), atol=2e-6)
  grad = lambda m: jax.grad(lambda p: jnp.sum(jnp.sin(m.apply(p, x))))(params)
  for a, b in zip(jax.tree.leaves(grad(other)), jax.tree.leaves(grad(xla))):
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-5)


def test_seed_batch_trains_the_same_seeds_in_groups(images):
  data = train.TrainData.from_task(task_of(images))
  cfg = small(seeds=3)
  together = train.fit(cfg, data, log=None)
  grouped = train.fit(dataclasses.replace(cfg, seed_batch=2), data, log=None)
  for name, value in together.arrays().items():
    if name != 'mistakes_packed':
      np.testing.assert_allclose(getattr(grouped, name), value, rtol=1e-5, atol=1e-6, err_msg=name)
  with pytest.raises(UserError, match='--seed_batch must be >= 0'):
    TrainConfig(seed_batch=-1)
