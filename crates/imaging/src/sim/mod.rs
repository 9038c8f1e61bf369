//! Simulation: array layouts, earth-rotation uvw synthesis, sky models, exact DFT, noise, imaging advice.
