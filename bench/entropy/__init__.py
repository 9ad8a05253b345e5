"""Entropy models for learned image codecs.

:class:`GeneralizedGaussianConditional` is a mean-scale-shape generalized Gaussian (GGM)
counterpart of compressai's ``GaussianConditional``: learned shape, finite-difference shape
gradients, a shape-dependent scale bound and real rANS bitstreams.
:class:`NearestScaleGaussianConditional` is compressai's Gaussian with the same
nearest-scale table rule, the baseline's entropy model.
"""

from .bounds import DynamicScaleBound, alpha_bound_exact, gaussian_zero_bin_tail, lower_bound
from .gaussian import NearestScaleGaussianConditional
from .gg_math import (
    FD_STEP_A,
    GGBinMass,
    gg_bin_mass,
    gg_bin_mass_nograd,
    gg_cdf,
    gg_log_density,
    gg_std_factor,
    sample_gg,
)
from .ggm_conditional import GeneralizedGaussianConditional, ste_round
from .shape import BETA_MODES, GGShape, beta_from_raw, raw_from_beta
from .tables import TableGrid, build_cdf_tables

__all__ = [
    "BETA_MODES",
    "FD_STEP_A",
    "DynamicScaleBound",
    "GGBinMass",
    "GGShape",
    "GeneralizedGaussianConditional",
    "NearestScaleGaussianConditional",
    "TableGrid",
    "alpha_bound_exact",
    "beta_from_raw",
    "build_cdf_tables",
    "gaussian_zero_bin_tail",
    "gg_bin_mass",
    "gg_bin_mass_nograd",
    "gg_cdf",
    "gg_log_density",
    "gg_std_factor",
    "lower_bound",
    "raw_from_beta",
    "sample_gg",
    "ste_round",
]
