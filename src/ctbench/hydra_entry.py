"""Script entry that re-runs a Hydra command in a child process (Lightning's DDP launcher).

Lightning starts each extra DDP rank as ``python sys.argv[0] *sys.argv[1:] hydra.run.dir=...``; the
``ctbench`` console script needs the command name first, so :mod:`ctbench.hydra_app` points
``sys.argv[0]`` here and passes the command in ``CTBENCH_HYDRA_COMMAND``.
"""

import os
import sys

if __name__ == "__main__":
    from ctbench.cli import main

    sys.exit(main([os.environ["CTBENCH_HYDRA_COMMAND"], *sys.argv[1:]]))
