"""``python -m reproduce``: see :mod:`reproduce.runner`."""

import sys

try:
    from .runner import main
except ImportError as exc:  # a library of another version, most often another checkout's install (issue 23)
    from pathlib import Path

    import embedding_norms

    here = Path(__file__).resolve().parents[1]
    print(f"error: the artifact code ({here / 'reproduce'}) cannot use the library embedding_norms imported "
          f"from {Path(embedding_norms.__file__).resolve().parent} ({exc}); build with one checkout's code: "
          f"activate {here}'s own environment, `pip install -e {here}`, or run from {here} with "
          f"`PYTHONPATH={here / 'src'}:{here}`", file=sys.stderr)
    sys.exit(2)

sys.exit(main())
