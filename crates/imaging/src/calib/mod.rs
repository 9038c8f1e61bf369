//! Antenna-based complex gain calibration: StEFCal-family solver, T/G/B solution types,
//! solution intervals, gain tables, applying and corrupting gains.
