r"""Fig. 1d of Ciceri et al.: the inversion under different optimisers (SPEC §6).

Trains the inversion experiment's network with each optimiser setting of SPEC §3 and plots
R+, R-, D against the training error (solid: Adam, dashed: SGD with weight decay, dotted: SGD
with momentum; plain SGD in black):

    python experiments/optimizers.py --dataset=mnist

Settings (--settings, default all): sgd_lr0.2, adam_lr0.001, adam_lr0.005, sgd_wd0.01,
sgd_wd0.05 (lr 0.2, lambda 0.01 / 0.05), momentum0.5_lr0.5, momentum0.9_lr0.2 ((mu, lr)).
The optimiser flags (--optimizer, --lr, --momentum, --weight_decay) are set per setting and
may not be given. t* moves with the optimiser; phi, the training error at t*, should not.

Runtime of the default (7 settings x 20 seeds x 1000 epochs = 1.4e5 seed-epochs): about 25 min
on a 2-core CPU. --quick (3 settings, 4 seeds, 300 epochs, P = 1024) runs in about 30 s.

Writes config.json, history_<setting>/ per setting, summary.json (one key per setting with
phi_mean, phi_std, t_star_mean and the full inversion summary; "across_settings") and
observables_vs_train_error.{png,pdf}.
"""

from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.errors import UserError
from manifold_dynamics.studies import robustness

cli.define_run_flags(epochs=1000, seeds=20)
cli.define_once(
    flags.DEFINE_list,
    'settings',
    list(robustness.OPTIMIZER_SETTINGS),
    'Optimiser settings to compare: ' + ', '.join(robustness.OPTIMIZER_SETTINGS),
)
FLAGS = flags.FLAGS

QUICK = dict(
    seeds=4,
    epochs=300,
    train_size=1024,
    settings=['sgd_lr0.2', 'adam_lr0.005', 'momentum0.9_lr0.2'],
)
SET_PER_SETTING = ('optimizer', 'lr', 'momentum', 'weight_decay')


@cli.entry
def main():
  given = [f'--{name}' for name in SET_PER_SETTING if cli.is_set(FLAGS, name)]
  if given:
    raise UserError(
        f'{", ".join(given)} cannot be set here: each --settings entry fixes '
        f'the optimiser; choose among {", ".join(robustness.OPTIMIZER_SETTINGS)}.'
    )
  data_cfg, train_cfg = cli.configs_from_flags(FLAGS, QUICK)
  settings = cli.quick_value(FLAGS, 'settings', QUICK['settings'])
  workdir = cli.workdir(FLAGS, 'optimizers', data_cfg, train_cfg, with_optimizer=False)
  robustness.run_optimizers(data_cfg, train_cfg, workdir, settings, FLAGS.overwrite)


if __name__ == '__main__':
  app.run(main)
