from __future__ import annotations

from framekit_cli.app import main

main()
