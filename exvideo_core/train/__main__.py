"""`python -m exvideo_core.train --config run.toml` (or under torchrun): see `cli`."""

import sys

from .cli import main

sys.exit(main())
