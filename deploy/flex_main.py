"""What Dataflow's flex-template launcher runs (FLEX_TEMPLATE_PYTHON_PY_FILE in the Dockerfile)."""

import sys
from pathlib import Path

from newsbeam.pipeline.template import main

if __name__ == "__main__":
    sys.exit(main(metadata=str(Path(__file__).with_name("metadata.json"))))
