r"""Fig. 1b of Ciceri et al.: the inversion of R+, R-, D during training (SPEC §6).

Trains --seeds independent initialisations of an L x H network on the even/odd task of the
first P training examples by full-batch gradient descent, all seeds in parallel, recording
R+, R-, D of the first hidden layer, the loss and the train/test errors at every epoch, then
finds t*, phi and the stragglers S(t*) of every seed.

    python experiments/inversion.py --dataset=mnist --seeds=100

Default epochs (1000), from a measurement (8 seeds x 3000 epochs, MNIST defaults: P = 8192,
2 x 20 tanh, lr 0.2): t*(R-) = 29-35, t*(D) = 33-41, t*(R+) = 37-47. By epoch 1000 the
training error is 6e-4, R+ has risen from 0.79 at t* to 0.924 (99.6% of its rise to epoch 3000,
13 times the 0.01 inversion tolerance), R- from 0.75 to 0.902, and D has fallen from 1.27 to
0.793 (its value at 3000 is 0.788): the second phase is essentially over.

Runtime of the default (100 seeds x 1000 epochs = 1e5 seed-epochs): about 20 min on a 2-core
CPU (~85-95 seed-epochs/s, ~80% of that CPU's matmul peak; benchmarks/throughput.py); on a GPU
it is bounded by the same ~0.8 GFLOP per seed-epoch (not yet measured on one). --quick
(4 seeds, 300 epochs, P = 1024) runs in about 15 s on a CPU and shows the inversion (t*(R+)
near 60).

Expected result (MNIST defaults): phi ~ 0.09 (+- 0.001), R+, R- with a minimum and D with a
maximum at t* ~ 30-50, every seed showing the inversion.

--stop_after_inversion (off by default: Fig. 1b shows the whole curve) ends training once every
seed has inverted on R+, R- and D; t*, phi and S(t*) are then those of the full run (validated
seed by seed in the README's Fig. 3 section).

Writes the run directory (default runs/inversion-...): config.json, history/ (streamed while
training, with a checkpoint), stragglers.npz, summary.json, inversion_vs_epoch.{png,pdf} (R+,
R-, D and errors against epoch, inversion region shaded), observables_vs_train_error.{png,pdf}
and R_plus_per_run.{png,pdf} (Fig. 3c-d: R+ of every run against training error and epoch).

--scores=all (or a list of forgetting, el2n, grand, cartography, aum, input_norm) with
--score_epochs=5,10,20 also records per-example difficulty scores during training, without
changing it, into scores.npz; experiments/scores.py --from_run compares them with S(t*).

Long runs: SIGTERM or Ctrl-C stops after the chunk in flight with everything saved, and the
same command resumes the run from there (bit for bit); --distributed (or
--coordinator_address, --num_processes, --process_id) spreads the seeds over the processes
of a multi-host job (README, "Long runs").
"""

from absl import app, flags

from manifold_dynamics import cli
from manifold_dynamics.studies.inversion import run_inversion

cli.define_run_flags(epochs=1000, seeds=100)
FLAGS = flags.FLAGS

QUICK = dict(seeds=4, epochs=300, train_size=1024)


main = cli.study_main('inversion', run_inversion, QUICK)


if __name__ == '__main__':
  app.run(main)
