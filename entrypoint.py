"""Entrypoint of the container action: every INPUT_* → the same deploy the CLI runs.

Inputs come from the environment only (the runner logs `args`, so nothing secret goes there).
"""

import os
import sys

# The job's env leaks into the container and may carry a PATH that hides our docker CLI.
os.environ["PATH"] = "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

from deployer.cli import action_main

if __name__ == "__main__":
    sys.exit(action_main(os.environ))
