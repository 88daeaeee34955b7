//! The lowest floor: a static binary that Juju could run as `dispatch` and that does nothing but exit 0.
//!
//! Its wall time is the cost of exec'ing a static binary in a fresh environment; everything a charm
//! does on top of this is either tool calls or its own code.

fn main() {}
