"""Run the action the way the GitHub runner runs a Docker container action (see runner.py)."""
