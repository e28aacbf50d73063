"""``python -m dltools <step>``: the same as the ``dltools`` console command."""

from dltools.cli import main

raise SystemExit(main())
