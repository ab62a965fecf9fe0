"""Intent Bus entry points: the command line (``python main.py …``) and, later,
the functions-framework targets. Both stay thin and delegate."""

from __future__ import annotations

if __name__ == "__main__":
    from orchestrator.cli import main

    main()
