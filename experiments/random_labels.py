r"""Fig. 1e-f of Ciceri et al.: true labels against randomised labels (SPEC §6).

Trains the inversion experiment's network twice, on the true labels and on a random
permutation of them (drawn with --seed; the class counts are kept, the test labels stay true),
and plots R+, R-, D and the errors against epoch side by side:

    python experiments/random_labels.py --dataset=mnist

It reports for every seed whether the run shows an inversion (SPEC §5: R+, R- or D moves back
by more than 0.01 after an interior extremum), with the rise itself. With true labels every
seed inverts; with random labels the non-monotonicity should disappear.

Runtime of the default (2 x 20 seeds x 1000 epochs = 4e4 seed-epochs): about 8 min on a 2-core
CPU. --quick (4 seeds, 300 epochs, P = 1024) runs in about 15 s.

Writes config.json, random_labels.npz (the permutation and the permuted labels),
history_true_labels/, history_random_labels/, summary.json ("true_labels" and
"random_labels", each with the per-seed list "inversion"), random_labels_vs_epoch.{png,pdf}
and observables_vs_train_error.{png,pdf}.
"""

from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.studies import robustness

cli.define_run_flags(epochs=1000, seeds=20)
FLAGS = flags.FLAGS

QUICK = dict(seeds=4, epochs=300, train_size=1024)


main = cli.study_main('random_labels', robustness.run_random_labels, QUICK)


if __name__ == '__main__':
  app.run(main)
