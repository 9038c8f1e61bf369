//! The w-stacking gridder and degridder (Arras et al. 2021; Ye et al. 2022).
