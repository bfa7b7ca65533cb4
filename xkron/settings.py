"""Every tunable default of xkron, with why it has its value.

Modules import their defaults from here, so this page is where to read (and, in a fork, change)
them; per call, most can be overridden (``solver_options``, ``restarts``, keyword arguments of
``fit``). Measured effects are in ``tests/benchmarks/README.md``. Imports nothing of xkron.
"""

from __future__ import annotations

# --- Iterative solver (conjugate gradients, stochastic Lanczos quadrature) ---------------------

CG_TOL = 1e-8
"""Default relative residual of every conjugate-gradient solve."""

CG_PROBES = 8
"""Default number of Rademacher probes for each log-determinant and trace term of the Schur complement on the
missing cells (:class:`xkron.linalg.iterative.IterativeSystem`): its exact ``log|G|`` leaves them a correction."""

OBSERVED_PROBES = 32
"""Default number of probes of CG on the observed cells (:class:`xkron.linalg.observed_cg.ObservedSystem`):
there the whole trace of the gradient is estimated, and 8 probes left a lengthscale 2.3% from the
dense optimum on 4,249 observed cells where 32 left it within 0.6% (``tests/benchmarks/README.md``)."""

PROBE_TOL = 1e-4
"""Relative residual of the probes' CG runs in both formulations (the data's solve keeps ``tol``): their Monte
Carlo error is far larger, and the Lanczos quadrature of the log-determinant converges before the solve does."""

SINGLE_PRECISION_TOL = 1e-5
"""Solves of at least this relative tolerance (the probes') run their complete-grid Kronecker products in
float32: three times faster on 8 rows, their rounding (1e-6 relative) far below the tolerance and the Monte
Carlo error. The data solve and the variance draws (``tol`` = 1e-8) stay in float64."""

THREADS = 0
"""Threads for independent solves (probes, INLA's design points; 0: one per core), BLAS at one thread meanwhile
(:mod:`xkron.linalg.threads`): 32 probes on 114,000 cells took 6.2 s on 2 threads against 13.2 s in one batch."""

CG_MAX_ITER = 2000
"""Default cap on CG iterations; hitting it is reported in :class:`CGReport`, never silent."""

BLOCK_CG_ROWS = 16
"""Right-hand sides per block CG run (:func:`xkron.linalg.cg.block_pcg`) of many-iteration solves: 283 → 113 iterations
for 128 rows of the coarse benchmark grid; slice-preconditioned solves (12 iterations) keep one CG per row."""

VARIANCE_SAMPLES = 128
"""Monte Carlo draws behind the iterative solver's sampled variance (:mod:`xkron.posterior.observed`)."""

DENSE_MAX_CELLS = 3000
"""With ``solver="auto"``, the most observed cells for the exact dense (Cholesky) solver when
missing cells or per-cell noise rule out the Kronecker eigenbasis; above it the iterative one."""

# --- Laplace approximation (non-Gaussian likelihoods) ------------------------------------------

LAPLACE_TOL = 1e-18
"""Newton decrement ``∇ψᵀδ`` (nats) at which :func:`xkron.linalg.laplace.newton_mode` takes the mode: as
``H ⪰ I`` in the whitened coordinates, the mode is then within ``√tol = 1e-9`` of the exact one and ``ψ``
within ``tol/2`` of its maximum (at 1e-12 the gamma likelihood's mode was 2e-7 away)."""

LAPLACE_CG_TOL = 1e-10
"""Relative residual of the CG solve in each Newton step: tight, so that the mode converges to the
exact Newton iteration's (tested against a dense Newton solve to 1e-8)."""

LAPLACE_MAX_NEWTON = 100
"""Most Newton steps of one mode search (log-concave likelihoods converge in a dozen)."""

LAPLACE_FORCING = 1e-2
"""Loosest relative residual of a Newton step's CG solve (the first's): later steps take ``√(decrement)/(1 + |ψ|)``,
down to :data:`LAPLACE_CG_TOL`: steps far from the mode are cheap, the last ones exact."""

LAPLACE_MIN_CURVATURE = 1e-12
"""Cells whose curvature ``W`` is below this fraction of the largest leave the Laplace posterior's pseudo-data
system (:mod:`xkron.posterior.laplace`): pseudo-noise ``W⁻¹`` over 10¹² times the smallest, as little information."""

LAPLACE_VARIANCE_PROBES = 64
"""Rademacher probes, and as many posterior draws, behind the Laplace variance above :data:`DENSE_MAX_CELLS` cells
(:func:`xkron.linalg.laplace_system.laplace_variance`): two estimates of what the preconditioner misses, combined."""

LAPLACE_MIXTURE_MIN_PROBES = 16
"""The fewest probes (and draws) per design point of an INLA mixture (it takes one posterior's divided by the
effective number of points) that cross-fits its own weights, the centre: fewer bias it (+2% to +90% at 8, 4)."""

LAPLACE_POOLED_MIN_PROBES = 8
"""The same for the other points, which take the centre's weights: unbiased at any count but for the clip at
the lower bound (+0.8% at 4, under 0.15% at 8; ``tests/linalg/test_laplace_variance.py``)."""

LAPLACE_PROBE_BATCH = 16
"""Probes of the Laplace variance solved together by CG (:class:`~xkron.linalg.laplace_system.LaplaceSystem`):
CG keeps five arrays of the batch's size: 640 MB for 16 on 10⁶ cells, not 2.6 GB for all 64."""

LAPLACE_VARIANCE_WARN_SE = 0.25
"""A Laplace prediction warns where the Monte Carlo se of the variance exceeds this fraction of it (an sd
uncertain by more than about 12%) at any cell."""

LAPLACE_COARSE_CELLS = 5_000
"""Laplace fits, and Gaussian ones by the iterative solver, on grids of more cells first fit a copy thinned
by 2 along their one-dimensional factors to at most this many cells; its optimum starts the whole grid's
MAP (:mod:`xkron.inference.coarse`)."""

LAPLACE_COARSE_MIN_SIZE = 8
"""No factor of the coarse copy has fewer inputs than this."""

LAPLACE_DEFAULT_CELLS = 5000
"""Latent models on grids of more cells default to ``fit(method="laplace")``; smaller ones to NUTS
on ``(θ, v)``. NUTS's cost grows with the whitened field it samples (a 20,000-cell Bernoulli grid took
23 minutes and had not converged); the Laplace marginal's with its Kronecker products only."""

INLA_CCD_F0 = 1.1
"""Radius of ``fit(method="inla")``'s central composite design in standardised units, ``f₀√d``
(Rue, Martino & Chopin 2009, Sec. 6.5, and R-INLA's default)."""

INLA_SKEW_PROBE = 2.0
"""Where ``fit(method="inla")`` measures the posterior's scale below and above the mode along each eigen-axis,
in sds of the Hessian's Gaussian: far enough to see a lengthscale's skew, near the design's ``f₀√d``."""

INLA_SKEW_MAX = 3.0
"""The largest stretch (and ``1/`` the smallest) of an eigen-axis by the skewness correction."""


INLA_HESSIAN_STEP = 1e-2
"""Step of the central differences of the gradient behind ``fit(method="inla")``'s Hessian (unconstrained
coordinates, posterior sds about 0.05-1): truncation error about 1e-4 relative, CG's (1e-10) far smaller."""

NUTS_LAPLACE_METRIC_MAX_SD = 0.25
"""``fit(method="nuts", init="laplace")`` samples with the fixed Laplace metric (:mod:`xkron.inference.laplace_metric`)
where the Laplace sd of the log-amplitude is at most this: the field's conditional spread scales with the amplitude,
so a metric fixed at the mode fits only where it is known to ±25% (Poisson seed grid, sd 0.15: 1-2 divergences per
1,000 draws; an 80-cell grid, sd 0.40: 43 in 800 against 17). Wider posteriors start at the mode, PyMC adapting."""

NUTS_LAPLACE_TARGET_ACCEPT = 0.9
"""The default ``target_accept`` of NUTS with the Laplace metric (PyMC's 0.8 gave 19 divergences in 800
draws on a 384-cell Poisson grid, 0.9 gave 1: the metric is fixed at the mode, the tails curve more)."""

NUTS_CENTRED_MAX_FACTOR = 400
"""NUTS samples a latent model's partially centred field (:mod:`xkron.inference.centred_nuts`) where no factor
has more points: each gradient decomposes every factor (``eigh``, 0.1 ms at 50 points)."""

NUTS_CURVATURE_STEP = 1e-4  # central differences of the gradient: the hyperparameters' initial NUTS metric

LAPLACE_MEAN_CORRECTION = True
"""Whether the Laplace posterior's mean (``method="laplace"``/``"inla"``) includes the first-order
correction from the mode to the mean (:func:`xkron.posterior.laplace.mean_correction_weights`)."""

LAPLACE_EVALUATIONS = 60
"""Log-marginal evaluations assumed by the cost check of ``fit(method="laplace")`` (51 measured on
10⁵ cells in ``tests/benchmarks/bench_laplace.py``)."""

LAPLACE_MATVECS_PER_EVALUATION = 2000
"""Kronecker matrix-vector products assumed per Laplace evaluation by the cost check (the mode's
Newton steps, the log-determinant's Lanczos probes and the gradient's solves; about 2,000 measured
on 10⁵ cells)."""

LAPLACE_DENSE_MAX = 2000
"""Grids of at most this many cells take the Laplace marginal's exact log-determinant and exact gradient
(the Newton matrix built densely, one solve per cell); larger ones stochastic Lanczos quadrature and
Hutchinson probes (:data:`LAPLACE_PROBES`)."""

LAPLACE_PROBES = 32
"""Probes of the stochastic log-determinant and of the Hutchinson trace and diagonal in the gradient of the
Laplace marginal above :data:`LAPLACE_DENSE_MAX` cells."""

# --- Static-gap preconditioner (land masks) ----------------------------------------------------

GAP_MAX_RANK = 800
"""Most eigenvector columns kept for the gap model (memory ``n_gap × r``, cost ``n_a r³``)."""

GAP_CUTOFF = 1e-3
"""Columns whose largest ``δ`` is below this are left out (they barely change ``S``)."""

GAP_COHESION = 0.5
"""The preconditioner is built only for gaps whose cells mostly border other gap cells (land
masses); CG already converges in a dozen iterations on scattered ones (islands), where the
preconditioner would cost more than it saves."""

# --- Kronecker algebra -------------------------------------------------------------------------

EIGH_SPLIT_MIN = 96
"""Smallest factor split by :func:`symmetric_eigh`: below it the extra Python work costs more
than the halved ``eigh`` saves (measured break-even near 64-100, single-threaded BLAS)."""

# --- Memory budgets ----------------------------------------------------------------------------

BLOCK_BYTES = 2**26
"""Largest block of a working layout, in bytes (64 MiB)."""

SPILL_BYTES = 2**27
"""Default ``spill_bytes``: an exchange goes through disk when it couples more bytes than this."""

DENSE_CHUNK_ELEMENTS = 2**22
"""Elements (test points × observed cells) of one chunk of :meth:`DenseSystem.explained_variance`."""

PREDICT_CHUNK_ELEMENTS = 2**22
"""Work-array budget (elements) when scattered points are predicted in chunks."""

SAMPLE_BATCH_ELEMENTS = 2**23
"""Work-array budget (elements) per batch of sample fields."""

SAMPLE_EXACT_UNION = 3000
"""Largest union of a factor's training and new inputs whose prior draw ``sample()`` takes from the exact
eigendecomposition (3,000 inputs: about 5 s, 70 MB). Above, the draw is anchored on this many inputs
(:mod:`xkron.posterior.anchored`): exact marginals, covariances off by at most the reported residual variance."""

ANCHOR_RANK_CUTOFF = 1e-10
"""Eigenvalues of the anchors' matrix below this fraction of the largest are left out of the
conditioning (their directions carry less prior variance than float64 resolves next to it)."""

POSTERIOR_CACHE_BYTES = 2**29
"""A fit keeps its per-draw conditioned posteriors in memory while their data take at most this."""

# --- MAP optimiser -----------------------------------------------------------------------------

DEFAULT_RESTARTS = 2
"""``fit``'s default number of extra MAP starts; another value where no MAP runs is warned about."""

MAP_MAXEVAL = 5000
"""Most log-posterior evaluations per start (``pm.find_MAP``'s default); a start stopped there
reports ``success=False``."""

MAP_CEILING_NATS = 100.0
"""A MAP trial point whose log posterior is bounded this far below the start's best is not evaluated
(:func:`xkron.inference.optimize.fit_map`'s ``loglik_max``): line searches far out cost 22-37 s each on tutorial 6."""

MAP_RETREAT_NATS = 10.0
"""An L-BFGS-B iterate this far (or two se) below its start's best point resumes the start there (at most
``MAP_RETREATS`` times; :func:`xkron.inference.optimize.fit_map`)."""
MAP_RETREATS = 3

MAP_AT_BEST_NATS = 1e-3
"""Starts whose optimum is within this many nats of the best count as reaching it: smaller
differences are the optimiser's tolerance, not different optima."""

PERIOD_DISTINCT = 0.1
"""Two starting periods closer than this relative difference count as one."""

PERIODIC_LS_START = 1.0
"""Start of a ``Periodic`` lengthscale, which is relative to the period (``sin(π d/T)/ℓ``), not in
coordinate units: at 1 the correlation half a period apart is ``exp(−1/2)``, smooth but not flat."""

PERIODIC_LS_RANGE = (0.2, 5.0)
"""98% range of the default prior of a ``Periodic`` lengthscale, relative to the period: at 0.2 the
correlation half a period apart is ``exp(−12.5)`` (a cycle with sharp features), at 5 it is 0.98
(nearly a sinusoid of small amplitude about the mean; beyond it the factor is almost constant)."""

ENVELOPE_PERIODS = 4.0
"""Start of the lengthscale of a decaying kernel multiplied by a periodic one (a quasi-periodic
part, ``Periodic() * Matern52()``), in periods: a cycle whose shape changes over a few periods
(:mod:`xkron.spec.kernel_starts`)."""

# --- ADVI --------------------------------------------------------------------------------------

ADVI_DEFAULTS = {"n": 20_000, "learning_rate": 0.01}
"""Mean-field ADVI: iterations, and the learning rate of its Adam optimiser. PyMC's default
(adagrad, learning rate 1e-3) was still drifting after 100,000 iterations on a 1300-cell
binomial grid, where Adam at 0.01 settled within about 10,000."""

# --- Cost estimates (CostWarning, CostError) ---------------------------------------------------

EIGH_RATE = 1e10
"""``n³`` per second of a dense symmetric eigendecomposition with vectors (LAPACK ``evd``) on a
laptop's few cores: ``n = 1000`` takes about 0.1 s."""

FLOP_RATE = 2e10
"""Multiply-adds per second of the matrix products (BLAS ``gemm``) on the same machine."""

WARN_SECONDS = 60.0
"""Requests estimated to take longer warn: a minute is where a silent call looks hung."""
LOO_MAX_SECONDS = 1800.0
"""Exact leave-one-out of a gappy iterative fit estimated longer is refused: cross-validation is cheaper."""

WARN_MEMORY_FRACTION = 0.5
"""Requests estimated to need more than this fraction of the available memory warn: the
machine may start swapping, and the estimate may be low by a small factor."""

REFUSE_MEMORY_FRACTION = 1.0
"""More than this fraction of the available memory is refused: it would swap or be killed, losing the session."""

MAP_EVALUATIONS = 300
"""Likelihood-and-gradient evaluations of a MAP fit, all starts together (typical: 50-150 each)."""

NUTS_EVALUATIONS_PER_DRAW = 15
"""Gradient evaluations per NUTS draw (tuning included): tree depth 3-4 is typical for these models."""

# --- Numerical tolerances ----------------------------------------------------------------------

TIME_STEP_TOLERANCE = 1e-6
"""Largest relative error allowed in the smallest step of a training time coordinate: beyond
it float64 no longer keeps the data's resolution (ns steps over weeks), and the fit is refused."""

PHASE_TOLERANCE = 1e-6
"""Largest rounding error of a coordinate difference, as a fraction of a period, that the
periodic kernels accept: it is ``eps·|Δ|/period``, so about 4.5e9 periods away the phase
(and so the correlation) would be rounding noise."""

# --- Spectral preconditioner (CG on the observed cells) ------------------------------------------

SPECTRAL_CUTOFF = 4.0
"""Keep every complete-grid Kronecker mode with ``η² λ > SPECTRAL_CUTOFF · d₀``: the preconditioned system's
condition number is then at most ``1 + SPECTRAL_CUTOFF`` (:mod:`xkron.linalg.spectral`); smaller keeps more."""

SPECTRAL_MAX_RANK = 3000
"""Most modes the spectral preconditioner keeps (its build costs ``n_observed · rank²`` flops)."""

SPECTRAL_BYTES = 2**30
"""Memory of the spectral preconditioner's two ``n_observed × rank`` matrices, ``16 · n_observed · rank``
bytes (1 GiB): 150,000 observed cells keep at most 447 modes."""

SLICE_COST_RATIO = 4.0
"""CG on the observed cells takes the slice preconditioner (:func:`xkron.linalg.slices.slice_axis`) where an
iteration costs at most this many spectral ones: 0.6× on OSTIA's Pacific (5× faster), 6× on the band (2× slower)."""

SLICE_MAX_BOUND = 100.0
"""Slices along a dim are used only where their condition-number bound (:func:`xkron.linalg.slices.slice_bound`)
is at most this (about 70 CG iterations at 1e-8); tutorial 4's window along longitude: 1,416 iterations."""

SLICE_MIN_MISSING = 0.4
"""``solver_options formulation="auto"`` takes CG on the observed cells over the Schur complement when slices
precondition it and at least this share of the grid is missing (:func:`xkron.linalg.systems.choose_formulation`).
Measured on twelve months of OSTIA's Pacific: at 49% missing (clouds) the slices win 3× (4.7 s against 14 s per
log-likelihood and gradient); at 12% missing (scattered cells and a block) the Schur complement's 0.5 s wins."""

SLICE_MIN_MISSING_SOLVES = 0.2
"""The same for a posterior's solves (the mean, the Monte Carlo sd's draws), which need no log-determinant:
the observed cells with slices (:func:`xkron.linalg.slices.solve_axis`) from this share missing. On the
coarse field (26% missing) 64 draws took 3.2 s so, against 9.0 s by the Schur complement (86 iterations
against 12). Not measured below; tutorial 4's window with 12% missing keeps the Schur complement."""

# --- Lanczos (LOVE) predicted variance ---------------------------------------------------------

VARIANCE_TOL = 0.01
"""Default bound on the relative error of the iterative solver's predicted sd at every cell
(``solver_options variance_tol``, :func:`xkron.linalg.love.lanczos_variance`): the Lanczos bracket is
rigorous, so 1% is a guarantee, within the 2% that gap filling asks of the sd."""

LANCZOS_AUTO_CELLS = 10_000
"""With ``variance="auto"`` (default), the most observed cells for the Lanczos variance, else Monte Carlo: its
bracket closed to 1% in 470 steps on 9,505 cells, 1,824 on 38,020, not in 3,000 on tutorial 4's 28,000."""

LANCZOS_MAX_STEPS = 3000
"""Most Lanczos steps of the predicted variance (``solver_options variance_steps`` overrides): reorthogonalisation
costs ``n_o k²``, so past a few thousand steps it costs more than the Monte Carlo estimate it replaces."""

LANCZOS_MAX_BYTES = 2**30
"""Most bytes of the Lanczos basis ``Q`` (``k`` float64 vectors over the observed cells): 1 GiB
keeps a 150,000-observed-cell grid (about 890 steps) inside a 3 GB run."""

LANCZOS_BLOCK = 8
"""Lanczos vectors per block: the reorthogonalisation reads ``Q`` once per block instead of once per
vector (it is memory-bound), and the Kronecker products run on ``p`` rows at once."""

LANCZOS_CHECK_STEPS = 32
"""Lanczos vectors between checks of the variance bracket (a check costs about one block's Kronecker products)."""

# --- MAP starting values and restarts ------------------------------------------------------------

VARIOGRAM_MAX_LAGS = 64
"""Most lags of the empirical semivariogram along a dim (at most a third of its steps): the
lengthscale fit needs the lags where the correlation is above :data:`VARIOGRAM_MIN_CORRELATION`,
and each lag costs one pass over the data."""

VARIOGRAM_MIN_PAIRS = 20
"""Lags with fewer pairs of observed cells are left out of the variogram fit: their value is noise."""

VARIOGRAM_MIN_CORRELATION = 0.1
"""The lengthscale is fitted on the lags up to where the correlation falls below this: beyond,
the variogram is the sill plus sampling noise and only blurs the fit."""

VARIOGRAM_FLAT = 0.05
"""A variogram varying by less than this fraction of the data's variance is flat (constant along the dim, or
no correlation at one step): it tells no lengthscale, and the start falls back to ``start_ladder``."""

NUGGET_FRACTION = (1e-4, 0.5)
"""Bounds of the starting noise variance, as fractions of the data's variance: at least a little
noise keeps the first evaluations well conditioned (the iterative solver's CG slows as the noise
shrinks), and at most half keeps the signal in the start."""

RESTART_LS_FACTORS = (2.0, 0.5, 4.0, 0.25)
"""Restart ``k`` (``k ≥ 1``) multiplies the data-driven lengthscales by the ``k``-th of these
(cycling): a second and third start on either side of the first, then further out."""

MAP_AGREE_RTOL = 1e-3
"""Two MAP starts agree when their optima are within :data:`MAP_AT_BEST_NATS` (or
:data:`MAP_AGREE_SE` standard errors) and every hyperparameter within this relative difference
(the mean within this many data sd): the remaining restarts are then skipped, since a third
start would find the same optimum again."""

MAP_AGREE_RTOL_NOISY = 0.02
""":data:`MAP_AGREE_RTOL` for optima whose log posteriors are Monte Carlo estimates (iterative solver): the
optimiser stops within a fraction of the se, and along flat directions the optima of different starts differ
by over 1e-3 with log posteriors within 0.05 se (coarse benchmark grid: ``ls_time`` 1.4% apart)."""

MAP_AGREE_SE = 2.0
"""With the iterative solver every log posterior is a Monte Carlo estimate with a stated se (``logp_se``,
1-15 nats on the benchmark grids): optima whose log posteriors differ by less than this many combined se
``√(se_a² + se_b²)`` count as one (when this exceeds :data:`MAP_AT_BEST_NATS`), and so do starts "at the best"."""

MAP_STOP_SE = 0.0
"""An iterative-objective optimisation ends at its best point once :data:`MAP_STOP_EVALUATIONS` evaluations in a
row neither improved the log posterior by over this fraction of its se nor worsened it by over one se (coarse
grid: 16 evaluations, 55 and a failure otherwise; 0.1 se left a satellite window's amplitude 1.4% off the dense
optimum, 0 left it 0.14%). A user's ``tol`` or ``options`` turn this rule off."""

MAP_STOP_STEP = 1e-3
"""Largest distance from the best point (every scaled coordinate: relative change of a log-transformed
hyperparameter, data sds for the mean) at which an evaluation without improvement counts towards
:data:`MAP_STOP_EVALUATIONS`: a line search thrashing in place tries points this close, one moving along a
flat direction does not (counting those stopped a gappy fit's amplitude 8.6% from the dense optimum)."""

MAP_STOP_STILL = 1e-6
"""Distance from the best point (as :data:`MAP_STOP_STEP`) within which an evaluation counts
towards :data:`MAP_STOP_EVALUATIONS` even when it is better by up to one standard error: a change
of a millionth in every hyperparameter is no progress, and the estimate's differences there are
the CG tolerance's jitter (the probes' solves stop at :data:`PROBE_TOL`)."""

MAP_STOP_EVALUATIONS = 4
"""Consecutive evaluations without improvement, close to the best point (:data:`MAP_STOP_STEP`), that end an
iterative objective's optimisation (:data:`MAP_STOP_SE`). With 3 a small gappy fit stopped 8.6% from the dense
optimum; 4, since negligible gains count as stalls, keeps the windows of ``bench_missing.py`` within 0.14% of it."""

# --- Display of fits (text and HTML reprs, plots) ------------------------------------------------

SUMMARY_CI_PROB = 0.94
"""The HDI of a fit's posterior summary: ArviZ's customary 94%, plainly not a 95% test."""
RHAT_MAX = 1.01
"""R-hat above this flags a NUTS fit as not converged (Vehtari et al. 2021, ArviZ's ``diagnose``)."""
DISPLAY_MAX_SLICES = 12
"""Rows of a BatchFit's per-slice HTML table (first and last halves), as xarray's ``display_max_rows``."""
PLOT_MAX_POINTS = 20_000
"""Observed cells above which ``fit.plot()``'s fitted-vs-observed panel is a hexbin, not a slow scatter."""
PRIOR_PLOT_DRAWS = 4000
"""Prior draws that set a MAP fit's prior panels' range (``fit.plot()``), or give their KDE if no closed form."""

# --- Cross-validation (xkron.cross_validate) -----------------------------------------------------

CV_FOLDS = 5
"""Folds of :func:`xkron.cross_validate`: 80% of the data train each fold, the usual k-fold compromise."""

CV_BLOCKS_PER_DIM = 4
"""``scheme="blocks"`` without ``blocks=``: every dim cut into 4 (64 boxes on a 3-D grid for 5 folds)."""

CV_LEVELS = (0.5, 0.9, 0.95)
"""Central predictive intervals whose coverage :func:`xkron.cross_validate` reports."""

CV_PIT_BINS = 10
"""PIT histogram bins: ten show a U (too narrow) or a hump (too wide) from a few hundred cells."""

ARVIZ_LOG_LIKELIHOOD_ELEMENTS = 2**26
"""Most draws × observed cells in a fit's pointwise ``log_likelihood`` (:mod:`xkron.results.arviz`): 512 MiB
of float64 in memory and in the file; above it the group is left out, as ``xkron_log_likelihood`` says."""

EXTRAPOLATION_LENGTHSCALES = 3.0
"""Predictions this many lengthscales from every datum of a decaying factor warn (``ExtrapolationWarning``): there
the correlation with the nearest datum is < 5% for every radial kernel (Matern12 0.050, ExpQuad 0.011), the prior's."""
