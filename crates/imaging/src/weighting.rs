//! Imaging weights: natural, uniform, Briggs robust, Gaussian taper.
