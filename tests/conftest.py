"""Tests run offline and in smoke mode, whatever the shell says."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["WORKSHOP_MODE"] = "smoke"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
