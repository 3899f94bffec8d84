"""Joint training of the dehazing and DE networks: losses, the task (one optimisation step), the loop, recipes."""
