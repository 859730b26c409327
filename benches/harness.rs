//! Benchmark harness (issue 6): see BENCHMARKS.md.
fn main() {}
