"""The inference engine: orchestration, backends (network, dark channel prior), fast paths, export."""
