"""The CPU execution provider: kernels by category plus the planner/executor."""
