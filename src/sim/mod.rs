//! Account API simulator.
