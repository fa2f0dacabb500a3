"""``python -m sam_sr COMMAND ...`` = ``sam-sr COMMAND ...``."""
from .cli import main

raise SystemExit(main())
